package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/query"
)

// The lane leases' timing (docs/ARCHITECTURE.md, "Lanes"): renewed every
// second, lasting five, and given up locally one second before they run
// out unrenewed. A dead projector's lanes move after about TTL + renew.
const (
	leaseRenew  = time.Second
	leaseTTL    = 5 * time.Second
	leaseMargin = time.Second
)

// checkLanes refuses to run with another number of lanes than the
// deployment recorded (the first process records it).
func (a *app) checkLanes(ctx context.Context, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	return postgres.CheckLanes(ctx, pool, a.cfg.ProjectorLanes)
}

// laneOfEnvelope is the deployment's lane function for the relay.
func (a *app) laneOfEnvelope(e event.Envelope) int {
	return query.LaneOfEnvelope(e, a.cfg.ProjectorLanes)
}

// laneOfEvent is the deployment's lane function for the command service's
// tokens.
func (a *app) laneOfEvent(e event.Envelope, pl event.Payload) int {
	return query.LaneOfEvent(e, pl, a.cfg.ProjectorLanes)
}

// memberName names this projector process among the lease members: host,
// pid and a random suffix, so a restarted process is a new member.
func memberName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
