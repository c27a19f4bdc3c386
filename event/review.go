package event

// StreamReview is the stream type of reviews.
const StreamReview = "review"

// The review stream's event types, declared to the codec.
var _ = declareStream(StreamReview, typeOf[ReviewAdded](), typeOf[ReviewRemoved]())

type ReviewAdded struct {
	ProductID string `json:"productId"`
	Author    string `json:"author"`
	Rating    int    `json:"rating"`
	Comment   string `json:"comment"`
}

// ReviewRemoved carries the rating so a projector can undo it exactly.
type ReviewRemoved struct {
	ProductID string `json:"productId"`
	Rating    int    `json:"rating"`
}

func (ReviewAdded) EventType() string   { return "ReviewAdded" }
func (ReviewRemoved) EventType() string { return "ReviewRemoved" }
