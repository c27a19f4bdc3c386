-- +goose Up
-- Order sagas: one row per placed order, kept by the saga process manager.
-- A row is written by a trigger in the same transaction as the order's
-- OrderPlaced event, so every order has a deadline even while no saga
-- process runs (no dual write, nothing to miss). The deadline itself is the
-- saga's setting: an open saga expires when placed_at + deadline has passed
-- by Postgres's clock.
CREATE TABLE sagas (
    order_id      text        PRIMARY KEY,
    status        text        NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'confirmed', 'rejected', 'cancelled')),
    placed_at     timestamptz NOT NULL,
    -- when a saga process first handled the OrderPlaced event
    started_at    timestamptz,
    -- the rejection reason decided for the order: the first decided wins
    reason        text,
    -- a deadline pass has claimed the saga until then
    claimed_until timestamptz,
    closed_at     timestamptz
);
CREATE INDEX sagas_open_by_placed_at ON sagas (placed_at) WHERE status = 'open';

-- +goose StatementBegin
CREATE FUNCTION sagas_register_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sagas (order_id, placed_at) VALUES (NEW.stream_id, NEW.occurred_at)
    ON CONFLICT (order_id) DO NOTHING;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER events_register_order_saga AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.stream_type = 'order' AND NEW.event_type = 'OrderPlaced')
    EXECUTE FUNCTION sagas_register_order();

-- Orders placed before this migration and still PENDING (nothing after
-- OrderPlaced) get their saga too.
INSERT INTO sagas (order_id, placed_at)
SELECT e.stream_id, e.occurred_at FROM events e
WHERE e.stream_type = 'order' AND e.event_type = 'OrderPlaced'
  AND NOT EXISTS (SELECT 1 FROM events f WHERE f.stream_id = e.stream_id AND f.version > e.version)
ON CONFLICT (order_id) DO NOTHING;

-- +goose Down
DROP TRIGGER events_register_order_saga ON events;
DROP FUNCTION sagas_register_order();
DROP TABLE sagas;
