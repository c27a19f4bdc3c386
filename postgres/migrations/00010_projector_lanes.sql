-- +goose Up
-- Settings fixed for a deployment, recorded by the first process that runs
-- with them (postgres.CheckLanes): "projector_lanes" is P, the number of
-- projector lanes. Changing it is a rebuild (docs/SCALING.md).
CREATE TABLE deployment_settings (
    name       text        PRIMARY KEY,
    value      text        NOT NULL,
    set_at     timestamptz NOT NULL DEFAULT now()
);

-- The relay's last published cursor per lane, [[tx, position], ...] in lane
-- order, saved with its checkpoint: each lane's next message names it as its
-- predecessor, so a lane consumer sees a hole in its own lane.
ALTER TABLE relay_checkpoints ADD COLUMN lanes jsonb NOT NULL DEFAULT '[]';

-- Live projector processes: a member heartbeats; one whose heartbeat is
-- older than the lease TTL is gone.
CREATE TABLE projector_members (
    member     text        PRIMARY KEY,
    seen_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per lane: who holds it until when, and the epoch of the claim
-- (bumped by every claim; lane checkpoints carry it to fence a deposed
-- holder).
CREATE TABLE projector_leases (
    lane       int         PRIMARY KEY,
    holder     text,
    epoch      bigint      NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);

-- Every claim and release, for operators and for the test that no lane was
-- ever held by two projectors at once. A release names the epoch it ends;
-- an expiry shows as the next claim of the lane.
CREATE TABLE projector_lease_log (
    id         bigserial   PRIMARY KEY,
    lane       int         NOT NULL,
    member     text        NOT NULL,
    epoch      bigint      NOT NULL,
    action     text        NOT NULL CHECK (action IN ('claim', 'release')),
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz
);
CREATE INDEX projector_lease_log_by_lane ON projector_lease_log (lane, id);

-- +goose Down
DROP TABLE projector_lease_log;
DROP TABLE projector_leases;
DROP TABLE projector_members;
ALTER TABLE relay_checkpoints DROP COLUMN lanes;
DROP TABLE deployment_settings;
