-- +goose Up
-- The event store. Each row is its own outbox entry: the relay reads rows in
-- (tx_id, position) order below the oldest running transaction, so an event
-- and its way to the broker are committed together (no dual write).
CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id       uuid        NOT NULL UNIQUE,
    stream_id      text        NOT NULL,
    stream_type    text        NOT NULL,
    version        integer     NOT NULL CHECK (version > 0),
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    occurred_at    timestamptz NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX events_relay_order ON events (tx_id, position);

-- Exactly-once mutations: a command id, a hash of its input and its result,
-- written in the same transaction as the events it appended.
CREATE TABLE commands (
    command_id  text        PRIMARY KEY,
    mutation    text        NOT NULL,
    input_hash  bytea       NOT NULL,
    result      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Where each relay has published up to, in relay order.
CREATE TABLE relay_checkpoints (
    name       text        PRIMARY KEY,
    tx_id      xid8        NOT NULL,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE relay_checkpoints;
DROP TABLE commands;
DROP TABLE events;
