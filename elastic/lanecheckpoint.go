package elastic

import (
	"context"

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
	var cp query.Checkpoint
	ok, _, err := s.get(ctx, query.Checkpoints.Index, query.LaneCheckpointID(lane), &cp)
	if err != nil || !ok {
		return event.Cursor{}, err
	}
	return event.Cursor{Tx: cp.Tx, Position: cp.Position}, nil
}
