package query

import "time"

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

// Checkpoint is the projector's applied watermark, as stored: the query
// service reads it when notices are late (Tracker).
type Checkpoint struct {
	Tx        uint64    `json:"tx"`
	Position  int64     `json:"position"`
	UpdatedAt time.Time `json:"updatedAt"`
}
