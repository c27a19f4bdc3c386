-- +goose Up
-- Dead letters: events the projector could not write to the read models
-- (Elasticsearch refused their document for good, or their stream type has
-- no read model), and the later events of the same document parked behind
-- them, in relay order, until an operator replays or drops them
-- (splitstream dead). Written by the projector before it acks; one row per
-- (document, event), so parking again after a retried batch is a no-op.
CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    doc_kind    text        NOT NULL,
    doc_id      text        NOT NULL,
    event_id    text        NOT NULL,
    tx          bigint      NOT NULL,
    position    bigint      NOT NULL,
    prev_tx     bigint      NOT NULL,
    prev_pos    bigint      NOT NULL,
    event_type  text        NOT NULL,
    envelope    jsonb       NOT NULL,
    reason      text        NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    replayed    int         NOT NULL DEFAULT 0,
    UNIQUE (doc_kind, doc_id, event_id)
);
-- The projector's per-batch question (is this document parked?) and the
-- replay's order are both answered by this index.
CREATE INDEX dead_letters_by_document ON dead_letters (doc_kind, doc_id, tx, position);

-- +goose Down
DROP TABLE dead_letters;
