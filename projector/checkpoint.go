package projector

import (
	"context"
	"encoding/json"
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
		stored, err := p.get(ctx, []Ref{{Kind: query.Checkpoints.Name, ID: query.CheckpointID}})
		if err == nil {
			var cp query.Checkpoint
			if stored[0].Found {
				if err := json.Unmarshal(stored[0].Source, &cp); err != nil {
					return fmt.Errorf("projector checkpoint: %w", err)
				}
			}
			p.mu.Lock()
			p.wm = newWatermark(event.Cursor{Tx: cp.Tx, Position: cp.Position})
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
// checkpoint only shortens the replay after a restart.
func (p *Projector) saveCheckpoint(ctx context.Context) {
	p.mu.Lock()
	if !p.cpDirty || p.wm == nil {
		p.mu.Unlock()
		return
	}
	at := p.wm.at
	p.cpDirty = false
	p.mu.Unlock()
	doc, _ := json.Marshal(query.Checkpoint{Tx: at.Tx, Position: at.Position, UpdatedAt: p.cfg.Now().UTC()})
	res, err := p.write(ctx, []Write{{Ref: Ref{Kind: query.Checkpoints.Name, ID: query.CheckpointID}, Op: Overwrite, Doc: doc}})
	if err == nil && res[0].Err != nil {
		err = res[0].Err
	}
	if err != nil {
		p.log.Warn("write projector checkpoint", "err", err)
		p.mu.Lock()
		p.cpDirty = true
		p.mu.Unlock()
	}
}
