-- +goose Up
-- Nothing looks an event up by its event_id (the relay, the projector and
-- the command side read by stream, version and relay order), and the ids
-- are UUIDv7s the event store makes itself, so the unique index on it was
-- one more index entry per appended event for no reader. The ids stay, and
-- stay NOT NULL: they travel in every envelope.
ALTER TABLE events DROP CONSTRAINT events_event_id_key;

-- +goose Down
ALTER TABLE events ADD CONSTRAINT events_event_id_key UNIQUE (event_id);
