package elastic

import (
	"context"
	"fmt"
	"net/http"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// LaneCheckpoint reads lane's applied watermark from its checkpoint
// document (query.LaneCheckpointID), or the whole log's for
// event.WholeLog: what query.Marks polls.
func (s *Searcher) LaneCheckpoint(ctx context.Context, lane int) (event.Cursor, error) {
	if lane == event.WholeLog {
		return s.Checkpoint(ctx)
	}
	d, err := s.Get(ctx, query.Checkpoints, query.LaneCheckpointID(lane))
	if err != nil || d == nil {
		return event.Cursor{}, err
	}
	cp := d.Value.(*query.Checkpoint)
	return event.Cursor{Tx: cp.Tx, Position: cp.Position}, nil
}

// AddCheckpointFields puts the checkpoint document's current mapping on
// the live checkpoints index: a deployment from before lanes has a strict
// mapping without the lanes' epoch, and the checkpoints are never rebuilt.
// New fields only; a mapping change Elasticsearch refuses is an error.
func (x *Indices) AddCheckpointFields(ctx context.Context) error {
	mapping, ok := Mapping(query.Checkpoints.Index)
	if !ok {
		return fmt.Errorf("no mapping for %q", query.Checkpoints.Index)
	}
	if err := x.do(ctx, http.MethodPut, "/"+Alias(x.prefix, query.Checkpoints.Index)+"/_mapping", mapping, nil); err != nil {
		return fmt.Errorf("update the checkpoints mapping: %w", err)
	}
	return nil
}
