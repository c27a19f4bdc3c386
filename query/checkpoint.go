package query

import (
	"strconv"
	"time"
)

// Checkpoints declares the projector's checkpoint: one document,
// CheckpointID, holding the applied watermark, in the "checkpoints" read
// model. It is not rebuilt: a rebuild keeps its own progress in a fresh
// index and never moves the live projector's.
var Checkpoints = declare[Checkpoint](Kind{
	Name:  "checkpoint",
	Index: "checkpoints",
}, nil, func(*Checkpoint) int { return 0 })

// CheckpointID is the id of the projector's document among Checkpoints.
const CheckpointID = "projector"

// LaneCheckpointID is the id of lane n's checkpoint: "lane-<n>".
func LaneCheckpointID(n int) string { return "lane-" + strconv.Itoa(n) }

// Checkpoint is the projector's applied watermark, as stored: the query
// service reads it when notices are late (Tracker).
type Checkpoint struct {
	Tx        uint64    `json:"tx"`
	Position  int64     `json:"position"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Epoch is the lease epoch of the projector that wrote a lane's
	// checkpoint: a write under an older epoch than the stored one is
	// refused (projector.ErrDeposed).
	Epoch int64 `json:"epoch,omitempty"`
}
