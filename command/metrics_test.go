package command

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/splitstream/splitstream/event"
)

// memStore is just enough of an event store to drive the service.
type memStore struct{ streams map[string][]event.Envelope }

func (m *memStore) LoadSince(_ context.Context, id string, _ int) (*Snapshot, []event.Envelope, error) {
	return nil, m.streams[id], nil
}

func (m *memStore) Change(_ context.Context, c Change) (Result, error) {
	d, err := c.Decide(nil, m.streams[c.Stream.ID])
	if err != nil {
		return Result{}, err
	}
	for _, p := range d.Events {
		typ, sv, data, err := event.Encode(p)
		if err != nil {
			return Result{}, err
		}
		m.streams[c.Stream.ID] = append(m.streams[c.Stream.ID], event.Envelope{StreamID: c.Stream.ID, StreamType: c.Stream.Type,
			Version: len(m.streams[c.Stream.ID]) + 1, Type: typ, SchemaVersion: sv, Data: data})
	}
	return Result{ID: c.Stream.ID, Version: len(m.streams[c.Stream.ID])}, nil
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			return counterValue(m)
		}
	}
	return 0
}

func counterValue(m *dto.Metric) float64 { return m.GetCounter().GetValue() }

func TestServiceCountsCommandsByOutcome(t *testing.T) {
	reg := prometheus.NewRegistry()
	svc, err := NewService(&memStore{streams: map[string][]event.Envelope{}}, WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := svc.CreateProduct(ctx, Meta{}, CreateProduct{Name: "Kettle", Category: "kitchen", PriceCents: 100, Currency: "EUR", Stock: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ChangeProduct(ctx, res.ID, Meta{}, RenameProduct{Name: ""}); err == nil {
		t.Fatal("an empty name was accepted")
	}
	if got := counter(t, reg, "splitstream_commands_total", map[string]string{"mutation": "createProduct", "outcome": "ok"}); got != 1 {
		t.Fatalf("createProduct ok = %v, want 1", got)
	}
	if got := counter(t, reg, "splitstream_commands_total", map[string]string{"mutation": "renameProduct", "outcome": "BAD_USER_INPUT"}); got != 1 {
		t.Fatalf("renameProduct BAD_USER_INPUT = %v, want 1", got)
	}
	if got := counter(t, reg, "splitstream_events_appended_total", nil); got != 1 {
		t.Fatalf("events appended = %v, want 1", got)
	}
}
