package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// ErrDeposed is a lane projector whose lease is gone: its lease expired
// before it could renew it, or a newer holder's epoch is in the lane's
// checkpoint. It must stop; its last batch is handed back to the queue.
var ErrDeposed = errors.New("lane lease lost")

// laneState is what makes a Projector a lane's (ForLane).
type laneState struct {
	n, lanes int
	epoch    int64
	// valid reports whether the lease is still safely held (renewed within
	// its TTL less a safety margin, by the local clock).
	valid func() bool
	// wrote is the checkpoint as this holder last wrote it (ok false before
	// the first write, and after a conflict): the next write is guarded by
	// its version instead of reading the document again. The checkpoint is
	// written by the lane's consumer goroutine only, and by Lanes.stop once
	// that goroutine has ended.
	wrote struct {
		ok        bool
		at        event.Cursor
		seq, term int64
	}
}

// ForLane returns the projector of lane n (of lanes) under the lease epoch:
// the same store, history, dead letters, breaker and metrics as p, with a
// watermark, checkpoint ("lane-<n>", carrying epoch) and hole filling of
// its own. Records chain by their lane predecessor (event.Record.LanePrev).
// valid is asked before each batch and before each checkpoint write; once
// it says no, or a newer epoch is found in the checkpoint, Handle returns
// ErrDeposed.
func (p *Projector) ForLane(n, lanes int, epoch int64, valid func() bool) (*Projector, error) {
	if n < 0 || n >= lanes || valid == nil {
		return nil, fmt.Errorf("projector: lane %d of %d (or no lease check)", n, lanes)
	}
	c := &Projector{cfg: p.cfg, log: p.log.With("lane", n, "epoch", epoch), m: p.m, breaker: p.breaker,
		attempts: map[string]int{}, consumingAt: p.cfg.Now(), streamOf: p.streamOf,
		lane: &laneState{n: n, lanes: lanes, epoch: epoch, valid: valid}}
	p.children.add(c)
	return c, nil
}

// Close detaches a lane projector from its parent's health.
func (p *Projector) Close(parent *Projector) { parent.children.remove(p) }

// checkpointRef is the projector's checkpoint document.
func (p *Projector) checkpointRef() Ref {
	if p.lane == nil {
		return Ref{Kind: query.Checkpoints.Name, ID: query.CheckpointID}
	}
	return Ref{Kind: query.Checkpoints.Name, ID: query.LaneCheckpointID(p.lane.n)}
}

// prevOf is the cursor a record chains from in this projector's watermark.
func (p *Projector) prevOf(r event.Record) event.Cursor {
	if p.lane != nil {
		return r.LanePrev
	}
	return r.Prev
}

// deposed returns ErrDeposed when a lane projector's lease is no longer
// safely held.
func (p *Projector) deposed() error {
	if p.lane != nil && !p.lane.valid() {
		return fmt.Errorf("lane %d epoch %d: %w", p.lane.n, p.lane.epoch, ErrDeposed)
	}
	return nil
}

// writeLaneCheckpoint writes a lane's checkpoint guarded by the stored
// document's version, refusing when the stored epoch is newer than ours:
// a projector cut off from Postgres (its lease expired, another claimed
// the lane) cannot move the checkpoint back or over its successor's.
func (p *Projector) writeLaneCheckpoint(ctx context.Context, at event.Cursor) error {
	ref := p.checkpointRef()
	last := &p.lane.wrote
	for range 3 { // a conflict is a concurrent write: read it again, bounded
		if err := p.deposed(); err != nil {
			return err
		}
		var (
			w   Write
			err error
		)
		if last.ok {
			// Our own write is the stored one unless someone wrote since,
			// and then the guard fails and the loop reads it.
			if !last.at.Less(at) {
				return nil
			}
			w = Write{Ref: ref, Op: IfMatch, SeqNo: last.seq, PrimaryTerm: last.term}
		} else if w, err = p.laneCheckpointGuard(ctx, ref, at); err != nil || w.Ref == (Ref{}) {
			return err
		}
		w.Doc, _ = json.Marshal(query.Checkpoint{Tx: at.Tx, Position: at.Position, UpdatedAt: p.cfg.Now().UTC(), Epoch: p.lane.epoch})
		res, err := p.write(ctx, []Write{w})
		if err != nil {
			last.ok = false
			return err
		}
		if res[0].Err == nil {
			last.ok, last.at, last.seq, last.term = true, at, res[0].SeqNo, res[0].PrimaryTerm
			return nil
		}
		last.ok = false
		if !errors.Is(res[0].Err, ErrConflict) {
			return res[0].Err
		}
	}
	return fmt.Errorf("lane %d checkpoint: %w after 3 tries", p.lane.n, ErrConflict)
}

// laneCheckpointGuard reads the lane's checkpoint and returns the write
// that moves it to at: a create when there is none, else guarded by its
// version. It returns ErrDeposed when a newer epoch holds it, and no write
// (a zero Write) when it is already at or past at under our epoch.
func (p *Projector) laneCheckpointGuard(ctx context.Context, ref Ref, at event.Cursor) (Write, error) {
	stored, err := p.get(ctx, []Ref{ref})
	if err != nil {
		return Write{}, err
	}
	w := Write{Ref: ref, Op: Create}
	if s := stored[0]; s.Found {
		var cp query.Checkpoint
		if err := json.Unmarshal(s.Source, &cp); err != nil {
			return Write{}, fmt.Errorf("lane checkpoint: %w", err)
		}
		if cp.Epoch > p.lane.epoch {
			return Write{}, fmt.Errorf("lane %d: epoch %d holds the checkpoint, ours is %d: %w", p.lane.n, cp.Epoch, p.lane.epoch, ErrDeposed)
		}
		if cp.Epoch == p.lane.epoch && !(event.Cursor{Tx: cp.Tx, Position: cp.Position}).Less(at) {
			return Write{}, nil
		}
		w = Write{Ref: ref, Op: IfMatch, SeqNo: s.SeqNo, PrimaryTerm: s.PrimaryTerm}
	}
	return w, nil
}

// laneRecords keeps the records of recs in p's lane and chains each to the
// one before it in the lane, starting from at: the log is read in relay
// order, so the lane's records after the watermark come in lane order.
func (p *Projector) laneRecords(recs []event.Record, at event.Cursor) []event.Record {
	if p.lane == nil {
		return recs
	}
	out := recs[:0:0]
	prev := at
	for _, r := range recs {
		if query.LaneOfEnvelope(r.Envelope, p.lane.lanes) != p.lane.n {
			continue
		}
		r.Lanes, r.Lane, r.LanePrev = p.lane.lanes, p.lane.n, prev
		out = append(out, r)
		prev = r.Cursor
	}
	return out
}

// lanesOf lists the lane projectors of a parent, for its health.
type lanesOf struct {
	mu sync.Mutex
	ps map[*Projector]struct{}
}

func (l *lanesOf) add(p *Projector) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ps == nil {
		l.ps = map[*Projector]struct{}{}
	}
	l.ps[p] = struct{}{}
}

func (l *lanesOf) remove(p *Projector) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.ps, p)
}

func (l *lanesOf) list() []*Projector {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Projector, 0, len(l.ps))
	for p := range l.ps {
		out = append(out, p)
	}
	return out
}
