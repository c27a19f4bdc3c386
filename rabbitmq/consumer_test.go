package rabbitmq

import (
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
)

func TestDecodeMessage(t *testing.T) {
	typ, sv, data, err := event.Encode(event.ProductRenamed{Name: "Kettle"})
	if err != nil {
		t.Fatal(err)
	}
	rec := event.Record{
		Envelope: event.Envelope{ID: "e1", Position: 7, StreamID: "p1", StreamType: event.StreamProduct, Version: 2,
			Type: typ, SchemaVersion: sv, Data: data, OccurredAt: time.Now()},
		Cursor: event.Cursor{Tx: 900, Position: 7},
		Prev:   event.Cursor{Tx: 899, Position: 12},
	}
	pub, err := EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	good := decodeMessage(amqp.Delivery{Headers: pub.Headers, Body: pub.Body})
	if good.Invalid != nil || !good.Chained || good.Record.Cursor != rec.Cursor || good.Record.Prev != rec.Prev {
		t.Fatalf("good message = %+v", good)
	}

	// A broken body from the relay still says where it stands.
	broken := decodeMessage(amqp.Delivery{Headers: pub.Headers, Body: []byte(`{"id":`)})
	if !errors.Is(broken.Invalid, ErrBadMessage) || !broken.Chained || broken.Record.Cursor != rec.Cursor || broken.Record.Prev != rec.Prev {
		t.Fatalf("broken body = %+v", broken)
	}

	// Without the relay's headers it stands nowhere.
	stray := decodeMessage(amqp.Delivery{Body: pub.Body})
	if !errors.Is(stray.Invalid, ErrBadMessage) || stray.Chained {
		t.Fatalf("message without headers = %+v", stray)
	}
}
