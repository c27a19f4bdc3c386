package console

import (
	"sync"
	"time"
)

// Progress is a rebuild's progress as the rebuild reports it, for the
// console of its own process: the rebuild calls Start, Set and Phase as it
// goes and Finish at the end; the console reads it through Rebuild. The
// zero value is ready; a nil *Progress ignores every report.
type Progress struct {
	mu  sync.Mutex
	st  RebuildStatus
	set bool
}

var _ Rebuilds = (*Progress)(nil)

// Start says a rebuild of models began, with total events in the log.
func (p *Progress) Start(models []string, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st = RebuildStatus{Models: append([]string(nil), models...), Phase: "replaying", Total: total, Started: time.Now().UTC()}
	p.set = true
}

// Set says done events have been replayed, of total in the log.
func (p *Progress) Set(done, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Done = done
	p.st.Total = max(total, done)
}

// Phase names the step the rebuild is at ("swapping", "catching up").
func (p *Progress) Phase(phase string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Phase = phase
}

// Finish says the rebuild ended: done, or failed with err.
func (p *Progress) Finish(err error) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Phase = "done"
	if err != nil {
		p.st.Phase, p.st.Error = "failed", err.Error()
	}
}

// Rebuild returns the progress, false before Start.
func (p *Progress) Rebuild() (RebuildStatus, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Models = append([]string(nil), st.Models...)
	return st, p.set
}
