package query

import "github.com/splitstream/splitstream/event"

// Outcome says what applying one event to a document did.
type Outcome int

const (
	// Applied changed the document.
	Applied Outcome = iota
	// Duplicate was already reflected in the document; nothing changed.
	Duplicate
	// Gap means earlier events of the stream are missing: apply them first.
	Gap
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	default:
		return "gap"
	}
}

// stepOf places an event of a document's own stream against the version
// the document holds.
func stepOf(version int, e event.Envelope) (Outcome, bool) {
	switch {
	case e.Version <= version:
		return Duplicate, false
	case e.Version > version+1:
		return Gap, false
	}
	return Applied, true
}
