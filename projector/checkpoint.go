package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// resume loads the watermark from the checkpoint, once.
func (p *Projector) resume(ctx context.Context) error {
	p.mu.Lock()
	done := p.wm != nil
	p.mu.Unlock()
	if done {
		return nil
	}
	bo := p.backoff()
	for {
		stored, err := p.get(ctx, []Ref{p.checkpointRef()})
		if err == nil {
			var cp query.Checkpoint
			if stored[0].Found {
				if err := json.Unmarshal(stored[0].Source, &cp); err != nil {
					return fmt.Errorf("projector checkpoint: %w", err)
				}
			}
			at := event.Cursor{Tx: cp.Tx, Position: cp.Position}
			if p.lane != nil {
				// Fence the lane's previous holder at once: from now on its
				// checkpoint writes meet our epoch.
				if err := p.writeLaneCheckpoint(ctx, at); err != nil {
					return err
				}
			}
			p.mu.Lock()
			p.wm = newWatermark(at)
			p.resumeHole = p.lane != nil
			p.mu.Unlock()
			p.log.Info("projector resumed", "tx", cp.Tx, "position", cp.Position)
			p.countDead(ctx)
			return nil
		}
		p.log.Warn("read projector checkpoint", "err", err)
		if err := sleep(ctx, bo); err != nil {
			return err
		}
	}
}

// saveCheckpoint writes the watermark when it moved; one try, since the
// checkpoint only shortens the replay after a restart. Its one error is
// ErrDeposed (a lane projector's lease is gone).
func (p *Projector) saveCheckpoint(ctx context.Context) error {
	p.mu.Lock()
	if !p.cpDirty || p.wm == nil {
		p.mu.Unlock()
		return nil
	}
	at := p.wm.at
	p.cpDirty = false
	p.mu.Unlock()
	var err error
	if p.lane != nil {
		err = p.writeLaneCheckpoint(ctx, at)
		if errors.Is(err, ErrDeposed) {
			return err
		}
	} else {
		doc, _ := json.Marshal(query.Checkpoint{Tx: at.Tx, Position: at.Position, UpdatedAt: p.cfg.Now().UTC()})
		var res []WriteResult
		res, err = p.write(ctx, []Write{{Ref: p.checkpointRef(), Op: Overwrite, Doc: doc}})
		if err == nil && res[0].Err != nil {
			err = res[0].Err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.log.Warn("write projector checkpoint", "err", err)
		p.cpDirty = true
		return nil
	}
	p.cpWritten = p.cfg.Now()
	return nil
}

// Flush writes the checkpoint if the watermark moved past it: a lane
// projector calls it when it stops, so that its lane's next holder starts
// where it left off. Its one error is ErrDeposed.
func (p *Projector) Flush(ctx context.Context) error {
	return p.saveCheckpoint(ctx)
}
