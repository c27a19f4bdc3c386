package projector

import "github.com/splitstream/splitstream/event"

// watermark is the relay-order cursor up to which every record is done,
// with no holes. The relay gives each record the cursor of the one
// published before it (Prev); a record whose Prev is the watermark moves it
// on, and so do the held-back records chained after it. A record that
// arrives before its predecessor waits in held, keyed by its Prev.
type watermark struct {
	at   event.Cursor
	held map[event.Cursor]event.Cursor // prev -> cursor
}

func newWatermark(at event.Cursor) *watermark {
	return &watermark{at: at, held: map[event.Cursor]event.Cursor{}}
}

// done marks a record as applied (or dead-lettered) and reports whether the
// watermark moved.
func (w *watermark) done(cur, prev event.Cursor) bool {
	if !w.at.Less(cur) {
		return false // at or below the watermark: a redelivery
	}
	if prev != w.at {
		w.held[prev] = cur
		return false
	}
	w.at = cur
	for {
		next, ok := w.held[w.at]
		if !ok {
			break
		}
		delete(w.held, w.at)
		w.at = next
	}
	// Entries at or below the watermark can never be reached again.
	if len(w.held) > 0 {
		for p, c := range w.held {
			if !w.at.Less(c) {
				delete(w.held, p)
			}
		}
	}
	return true
}
