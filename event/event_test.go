package event

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// samples holds one payload of every event type with its stream.
var samples = []struct {
	p      Payload
	stream string
}{
	{ProductCreated{Name: "Kettle", Description: "Boils water.", Category: "kitchen", PriceCents: 2999, Currency: "EUR", Stock: 12}, StreamProduct},
	{ProductRenamed{Name: "Steel kettle"}, StreamProduct},
	{ProductDescriptionChanged{Description: "Boils water, quietly."}, StreamProduct},
	{ProductPriceChanged{PriceCents: 3499}, StreamProduct},
	{ProductRestocked{Quantity: 5, Stock: 17}, StreamProduct},
	{ProductDiscontinued{}, StreamProduct},
	{StockReserved{OrderID: "o1", Quantity: 2, Stock: 15}, StreamProduct},
	{StockReleased{OrderID: "o1", Quantity: 2, Stock: 17}, StreamProduct},
	{ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 4, Comment: "Fast. ✓"}, StreamReview},
	{ReviewRemoved{ProductID: "p1", Rating: 4}, StreamReview},
	{OrderPlaced{CustomerID: "c1", Lines: []OrderLine{
		{ProductID: "p1", ProductName: "Kettle", Quantity: 2, UnitPriceCents: 2999},
		{ProductID: "p2", ProductName: "Mug", Quantity: 1, UnitPriceCents: 500},
	}, TotalCents: 6498, Currency: "EUR"}, StreamOrder},
	{OrderConfirmed{}, StreamOrder},
	{OrderRejected{Reason: "insufficient stock"}, StreamOrder},
	{OrderCancelled{Reason: "changed my mind"}, StreamOrder},
	{CustomerRegistered{DisplayName: "Ada", Email: "ada@example.com", ShippingAddress: "1 Loop Rd"}, StreamCustomer},
	{CustomerRenamed{DisplayName: "Ada L."}, StreamCustomer},
	{CustomerAddressChanged{ShippingAddress: "2 Bay St"}, StreamCustomer},
}

func TestEveryTypeHasASample(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range samples {
		seen[s.p.EventType()] = true
	}
	for typ := range schemas {
		if !seen[typ] {
			t.Errorf("no sample for %s", typ)
		}
	}
	if len(seen) != len(schemas) {
		t.Errorf("%d samples, %d types in the table", len(seen), len(schemas))
	}
}

func TestTableKeyIsEventType(t *testing.T) {
	for typ, s := range schemas {
		p, err := s.decode([]byte(`{}`))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if p.EventType() != typ {
			t.Errorf("table key %s decodes to %s", typ, p.EventType())
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range samples {
		t.Run(s.p.EventType(), func(t *testing.T) {
			typ, v, data, err := Encode(s.p)
			if err != nil {
				t.Fatal(err)
			}
			if typ != s.p.EventType() || v != 1 {
				t.Errorf("Encode = %s v%d, want %s v1", typ, v, s.p.EventType())
			}
			got, err := Decode(typ, v, data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, s.p) {
				t.Errorf("round trip: got %#v, want %#v", got, s.p)
			}
			if st := StreamTypeOf(s.p); st != s.stream {
				t.Errorf("StreamTypeOf = %q, want %q", st, s.stream)
			}
		})
	}
}

func TestEnvelopeJSON(t *testing.T) {
	p := samples[0].p
	typ, v, data, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	in := Envelope{
		ID: "7f1d7a52-3a3c-4c1e-9d5e-0b8a2e1c4f00", Position: 42, StreamID: "p1",
		StreamType: StreamTypeOf(p), Version: 1, Type: typ, SchemaVersion: v, Data: data,
		Metadata:   Metadata{CommandID: "cmd-1", CorrelationID: "corr-1", Actor: "alice"},
		OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	// The field names are the contract with every consumer.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "position", "streamId", "streamType", "version", "type", "schemaVersion", "data", "metadata", "occurredAt"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("envelope JSON lacks %q: %s", k, raw)
		}
	}
	var meta map[string]any
	if err := json.Unmarshal(keys["metadata"], &meta); err != nil {
		t.Fatal(err)
	}
	if _, ok := meta["causationId"]; ok {
		t.Errorf("empty causationId not omitted: %s", keys["metadata"])
	}

	var out Envelope
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if !out.OccurredAt.Equal(in.OccurredAt) || out.Metadata != in.Metadata || out.Position != 42 {
		t.Errorf("envelope round trip: got %+v", out)
	}
	got, err := out.Payload()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("Payload() = %#v, want %#v", got, p)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name    string
		typ     string
		version int
		data    string
		want    error
	}{
		{"unknown type", "ProductTeleported", 1, `{}`, ErrUnknownType},
		{"empty type", "", 1, `{}`, ErrUnknownType},
		{"version 0", "ProductCreated", 0, `{}`, ErrUnknownType},
		{"version from a newer build", "ProductCreated", 2, `{}`, ErrUnknownType},
		{"not JSON", "ProductCreated", 1, `{"name":`, ErrMalformed},
		{"empty data", "ProductRenamed", 1, ``, ErrMalformed},
		{"null", "ProductDiscontinued", 1, `null`, ErrMalformed},
		{"array", "OrderConfirmed", 1, `[]`, ErrMalformed},
		{"wrong field type", "ProductPriceChanged", 1, `{"priceCents":"12"}`, ErrMalformed},
		{"wrong nested type", "OrderPlaced", 1, `{"lines":[{"quantity":"x"}]}`, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Decode(c.typ, c.version, []byte(c.data))
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, %v; want error wrapping %v", p, err, c.want)
			}
		})
	}
}

type unregistered struct{}

func (unregistered) EventType() string { return "Unregistered" }

func TestEncodeUnknown(t *testing.T) {
	for _, p := range []Payload{unregistered{}, nil} {
		if _, _, _, err := Encode(p); !errors.Is(err, ErrUnknownType) {
			t.Errorf("Encode(%#v) error = %v, want ErrUnknownType", p, err)
		}
	}
	if st := StreamTypeOf(unregistered{}); st != "" {
		t.Errorf("StreamTypeOf(unknown) = %q, want empty", st)
	}
	if st := StreamTypeOf(nil); st != "" {
		t.Errorf("StreamTypeOf(nil) = %q, want empty", st)
	}
}

// TestUpcast pretends ProductCreated is at schema version 3: version 1 said
// "title" where we now say "name", and version 2 had no category.
func TestUpcast(t *testing.T) {
	titleToName := func(data []byte) ([]byte, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		m["name"] = m["title"]
		delete(m, "title")
		return json.Marshal(m)
	}
	defaultCategory := func(data []byte) ([]byte, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		if _, ok := m["category"]; !ok {
			m["category"] = json.RawMessage(`"uncategorized"`)
		}
		return json.Marshal(m)
	}
	c := codec{
		"ProductCreated": {
			stream: StreamProduct,
			decode: decodeAs[ProductCreated],
			upcast: []upcaster{titleToName, defaultCategory},
		},
	}
	want := ProductCreated{Name: "Kettle", Category: "uncategorized", PriceCents: 100, Currency: "EUR", Stock: 1}
	cases := []struct {
		version int
		data    string
	}{
		{1, `{"title":"Kettle","priceCents":100,"currency":"EUR","stock":1}`},
		{2, `{"name":"Kettle","priceCents":100,"currency":"EUR","stock":1}`},
		{3, `{"name":"Kettle","category":"uncategorized","priceCents":100,"currency":"EUR","stock":1}`},
	}
	for _, tc := range cases {
		got, err := c.decode("ProductCreated", tc.version, []byte(tc.data))
		if err != nil {
			t.Fatalf("version %d: %v", tc.version, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("version %d: got %#v, want %#v", tc.version, got, want)
		}
	}

	typ, v, _, err := c.encode(want)
	if err != nil || typ != "ProductCreated" || v != 3 {
		t.Errorf("encode = %s v%d, %v; want ProductCreated v3", typ, v, err)
	}
	if _, err := c.decode("ProductCreated", 1, []byte(`{"title":`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("failed upcast: error = %v, want ErrMalformed", err)
	}
	if _, err := c.decode("ProductCreated", 4, []byte(`{}`)); !errors.Is(err, ErrUnknownType) {
		t.Errorf("version 4: error = %v, want ErrUnknownType", err)
	}
}

func TestPayloads(t *testing.T) {
	_, _, data, err := Encode(ProductRenamed{Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	ok := Envelope{StreamID: "p1", Version: 1, Type: "ProductRenamed", SchemaVersion: 1, Data: data}
	got, err := Payloads([]Envelope{ok})
	if err != nil || len(got) != 1 || got[0] != (ProductRenamed{Name: "n"}) {
		t.Fatalf("Payloads = %v, %v", got, err)
	}
	bad := ok
	bad.Version, bad.Type = 2, "Nope"
	if _, err := Payloads([]Envelope{ok, bad}); !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), "p1 v2") {
		t.Fatalf("Payloads with an unknown type: %v", err)
	}
}
