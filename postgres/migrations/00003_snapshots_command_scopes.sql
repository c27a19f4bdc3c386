-- +goose Up
-- Aggregate snapshots: the latest saved state of a stream, so that a
-- command reads one row and the few events after it instead of the whole
-- history. fold_version names the fold that wrote the state; a command
-- whose fold has another version ignores the row and replaces it. tx_id
-- and position are the relay cursor of the stream's event at version, so a
-- command that appends nothing still answers a token.
CREATE TABLE snapshots (
    stream_id    text        PRIMARY KEY,
    stream_type  text        NOT NULL,
    fold_version integer     NOT NULL,
    version      integer     NOT NULL CHECK (version > 0),
    state        jsonb       NOT NULL,
    tx_id        xid8        NOT NULL,
    position     bigint      NOT NULL,
    saved_at     timestamptz NOT NULL DEFAULT now()
);

-- Command ids in two spaces: 'client' for the commandIds clients send,
-- 'internal' for the ids the server gives its own commands (saga steps,
-- "saga:<order>:<step>"), so that neither can claim the other's.
ALTER TABLE commands ADD COLUMN scope text NOT NULL DEFAULT 'client'
    CHECK (scope IN ('client', 'internal'));
-- Only the saga sends these; no GraphQL mutation has their names.
UPDATE commands SET scope = 'internal'
    WHERE mutation IN ('reserveStock', 'releaseStock', 'confirmOrder', 'rejectOrder');
ALTER TABLE commands DROP CONSTRAINT commands_pkey;
ALTER TABLE commands ADD CONSTRAINT commands_pkey PRIMARY KEY (scope, command_id);

-- +goose Down
ALTER TABLE commands DROP CONSTRAINT commands_pkey;
DELETE FROM commands WHERE scope = 'internal'
    AND command_id IN (SELECT command_id FROM commands WHERE scope = 'client');
ALTER TABLE commands ADD CONSTRAINT commands_pkey PRIMARY KEY (command_id);
ALTER TABLE commands DROP COLUMN scope;
DROP TABLE snapshots;
