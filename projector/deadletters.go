package projector

import (
	"context"
	"sync"
)

// memDeadLetters keeps dead letters in memory (a rebuild, which logs and
// skips what the live projector parks, and tests). They do not survive the
// process.
type memDeadLetters struct {
	mu      sync.Mutex
	letters map[Ref][]Letter
}

// NewMemoryDeadLetters returns a dead-letter store in memory.
func NewMemoryDeadLetters() DeadLetters { return newMemDeadLetters() }

func newMemDeadLetters() *memDeadLetters { return &memDeadLetters{letters: map[Ref][]Letter{}} }

func (m *memDeadLetters) Parked(_ context.Context, refs []Ref) (map[Ref]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[Ref]bool{}
	for _, r := range refs {
		if len(m.letters[r]) > 0 {
			out[r] = true
		}
	}
	return out, nil
}

func (m *memDeadLetters) Park(_ context.Context, letters []Letter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
next:
	for _, l := range letters {
		for _, have := range m.letters[l.Ref] {
			if have.Record.Envelope.ID == l.Record.Envelope.ID {
				continue next
			}
		}
		m.letters[l.Ref] = append(m.letters[l.Ref], l)
	}
	return nil
}

func (m *memDeadLetters) Count(context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, ls := range m.letters {
		n += len(ls)
	}
	return n, nil
}

// Replay applies dead letters again, in the order given (relay order, as
// the dead-letter store lists them), to the documents they are parked
// under, as if those were not parked; any other parked document they touch
// still parks them. It parks nothing and leaves the watermark alone: the
// letters were passed when they were parked. It returns, per letter, ""
// when it is now applied (or already was), else why it is still dead.
// Replaying while the live projector runs is safe: every write is guarded
// and every fold rule idempotent. No notice is published (subscribers see
// the document at its next change).
func (p *Projector) Replay(ctx context.Context, letters []Letter) ([]string, error) {
	reasons := make([]string, len(letters))
	replaying := map[Ref]bool{}
	items := make([]item, 0, len(letters))
	for i, l := range letters {
		replaying[l.Ref] = true
		e := l.Record.Envelope
		pl, err := p.payload(e)
		if err != nil {
			reasons[i] = err.Error()
			continue
		}
		items = append(items, item{idx: i, rec: l.Record, pl: pl})
	}
	if len(items) == 0 {
		return reasons, nil
	}
	b, err := p.project(ctx, items, replaying)
	if err != nil {
		return nil, err
	}
	for _, it := range b.items {
		if d, ok := b.dead[it.idx]; ok {
			reasons[it.idx] = d.reason
		} else if err, ok := b.poisoned[it.idx]; ok {
			reasons[it.idx] = err.Error()
		}
	}
	return reasons, nil
}
