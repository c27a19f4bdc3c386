package command_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/event"
)

// refused is the *splitstream.Error a case expects. msg is checked when set;
// version is checked for conflicts.
type refused struct {
	code, field, msg string
	version          int
}

func invalid(field string) *refused { return &refused{code: splitstream.EInvalid, field: field} }

func notFound(msg string) *refused { return &refused{code: splitstream.ENotFound, msg: msg} }

func conflict(version int, msg string) *refused {
	return &refused{code: splitstream.EConflict, version: version, msg: msg}
}

// decideCase is one given/when/then row: past events, a command, and either
// the events it causes (none for a no-op) or the refusal.
type decideCase[C any] struct {
	name  string
	given []event.Payload
	when  C
	then  []event.Payload
	err   *refused
}

func runDecideCases[S, C any](t *testing.T, id string, cases []decideCase[C],
	fold func(string, []event.Payload) S, decide func(S, C) ([]event.Payload, error)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decide(fold(id, c.given), c.when)
			expectDecision(t, got, err, c.then, c.err)
			if err == nil && len(got) > 0 {
				// What was decided must also apply.
				all := append(append([]event.Payload{}, c.given...), got...)
				if v := reflect.ValueOf(fold(id, all)).FieldByName("Version").Int(); int(v) != len(all) {
					t.Errorf("version after %d events = %d", len(all), v)
				}
			}
		})
	}
}

func expectDecision(t *testing.T, got []event.Payload, err error, want []event.Payload, wantErr *refused) {
	t.Helper()
	if wantErr != nil {
		var se *splitstream.Error
		if !errors.As(err, &se) {
			t.Fatalf("got events %#v, error %v; want %s", got, err, wantErr.code)
		}
		if se.Code != wantErr.code || se.Field != wantErr.field {
			t.Errorf("error = %v; want code %s, field %q", se, wantErr.code, wantErr.field)
		}
		if wantErr.msg != "" && se.Message != wantErr.msg {
			t.Errorf("message = %q, want %q", se.Message, wantErr.msg)
		}
		if wantErr.code == splitstream.EConflict && se.CurrentVersion != wantErr.version {
			t.Errorf("current version = %d, want %d", se.CurrentVersion, wantErr.version)
		}
		if got != nil {
			t.Errorf("events %#v returned with an error", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if len(want) == 0 {
		if len(got) != 0 {
			t.Fatalf("got %#v, want no events", got)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}

// past lists the events a case is given or expects.
func past(evs ...event.Payload) []event.Payload { return evs }

// text returns n runes of two bytes each, so counting bytes would fail.
func text(n int) string { return strings.Repeat("é", n) }
