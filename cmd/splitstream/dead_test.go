package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// Elasticsearch refuses a product document (its index was made with a
// mapping that rejects the latestReviews a product with reviews has): the
// events that made it are parked in Postgres with Elasticsearch's reason,
// a later event of that product follows them in order, other documents
// keep flowing and the watermark passes. Then the mapping is fixed,
// `splitstream dead replay` re-drives the product's letters and the
// document equals the fold of its events; `dead drop` removes another
// product's letters.
func TestDeadLettersParkReplayAndDrop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL, pool := testenv.Postgres(t)
	es, prefix := testenv.Elasticsearch(t)
	idx := elastic.NewIndices(es, prefix, time.Second)
	if err := idx.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	// A products index whose mapping refuses any latestReviews entry.
	good, _ := elastic.Mapping(query.Products.Index)
	bad := strings.Replace(good, `"latestReviews":{"enabled":false,"type":"object"}`,
		`"latestReviews":{"type":"object","dynamic":"strict","properties":{}}`, 1)
	if bad == good {
		t.Fatal("the products mapping has changed; update this test")
	}
	badIndex := prefix + "-products-strictlatest"
	if err := elastic.Do(ctx, es, http.MethodPut, "/"+badIndex, `{"settings":{"number_of_shards":1,"number_of_replicas":0},"mappings":`+bad+`}`, nil); err != nil {
		t.Fatal(err)
	}
	old, err := idx.Swap(ctx, query.Products.Index, badIndex)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Delete(ctx, old...); err != nil {
		t.Fatal(err)
	}

	store := postgres.NewEventStore(pool)
	svc, err := command.NewService(store)
	if err != nil {
		t.Fatal(err)
	}
	m := command.Meta{}
	must := func(res command.Result, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	create := func(name string) string {
		return must(svc.CreateProduct(ctx, m, command.CreateProduct{Name: name, Description: "d", Category: "c", PriceCents: 100, Currency: "EUR", Stock: 5}))
	}
	review := func(pid string, rating int) string {
		return must(svc.AddReview(ctx, m, command.AddReview{ProductID: pid, Author: "Ada", Rating: rating, Comment: "fine"}))
	}
	poisoned, other, dropped := create("Kettle"), create("Mug"), create("Pan")
	review(poisoned, 4)
	review(dropped, 2)

	dead, err := postgres.NewDeadLetters(pool)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := projector.New(projector.Config{Store: elastic.NewDocStore(es, prefix), History: store,
		EventLog: postgres.NewRelaySource(pool), DeadLetters: dead, Registerer: reg, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	source := postgres.NewRelaySource(pool)
	var (
		at      event.Cursor
		handled int
	)
	project := func() {
		t.Helper()
		// The log's final part may lag a transaction open elsewhere on
		// the cluster: wait until every event is in it.
		var recs []event.Record
		for {
			var total int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total); err != nil {
				t.Fatal(err)
			}
			more, err := source.Next(ctx, at, 1000)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, more...)
			if len(more) > 0 {
				at = more[len(more)-1].Cursor
			}
			if handled+len(recs) >= total {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		handled += len(recs)
		msgs := make([]projector.Message, len(recs))
		for i, r := range recs {
			msgs[i] = projector.Message{Record: r, Chained: true}
		}
		vs, err := p.Handle(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vs {
			if v.Action != projector.Ack {
				t.Fatalf("%s: %v %s", recs[i].Envelope.Type, v.Action, v.Reason)
			}
		}
		if p.Watermark() != at {
			t.Fatalf("watermark %v, want %v: dead letters must be passed", p.Watermark(), at)
		}
	}
	project()

	ref := projector.Ref{Kind: query.Products.Name, ID: poisoned}
	letters, err := dead.Letters(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	// The product was created and reviewed in one batch: one write of it,
	// refused, so both events are its letters.
	if len(letters) != 2 || letters[0].Record.Envelope.Type != "ProductCreated" || letters[1].Record.Envelope.Type != "ReviewAdded" ||
		!strings.Contains(letters[1].Reason, "strict_dynamic_mapping_exception") || !strings.Contains(letters[1].Reason, "product "+poisoned) {
		t.Fatalf("letters of the poisoned product = %+v", letters)
	}

	// Later: an event of the poisoned product follows its letters; the
	// others flow.
	must(svc.ChangeProduct(ctx, poisoned, m, command.RenameProduct{Name: "Steel kettle"}))
	review(poisoned, 2)
	must(svc.ChangeProduct(ctx, other, m, command.RenameProduct{Name: "Big mug"}))
	project()
	letters, err = dead.Letters(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, l := range letters {
		types = append(types, l.Record.Envelope.Type)
		if i > 0 && !letters[i-1].Record.Cursor.Less(l.Record.Cursor) {
			t.Errorf("letters out of relay order: %v then %v", letters[i-1].Record.Cursor, l.Record.Cursor)
		}
	}
	if strings.Join(types, ",") != "ProductCreated,ReviewAdded,ProductRenamed,ReviewAdded" {
		t.Fatalf("letters of the poisoned product = %v", types)
	}
	if !strings.Contains(letters[2].Reason, "earlier dead letters") {
		t.Errorf("the rename's reason = %q", letters[2].Reason)
	}
	searcher := elastic.NewSearcher(es, prefix)
	if got, err := searcher.GetProduct(ctx, other); err != nil || got == nil || got.Name != "Big mug" {
		t.Fatalf("the other product = %+v, %v; it should keep flowing", got, err)
	}
	if got, _ := searcher.GetProduct(ctx, poisoned); got != nil {
		t.Fatalf("the poisoned product = %+v; it should stay as it was before its first dead letter (absent)", got)
	}
	if n := gauge(t, reg, "splitstream_projector_dead_letters"); n != 6 {
		t.Errorf("dead letter gauge = %v, want 6 (4 of the poisoned product, 2 of the dropped one)", n)
	}

	env := map[string]string{"DATABASE_URL": dbURL, "SPLITSTREAM_INDEX_PREFIX": prefix}
	cli := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		code := run(ctx, append([]string{"dead"}, args...), func(k string) string { return env[k] }, &out, &errOut)
		return out.String() + errOut.String(), code
	}
	out, code := cli("list")
	if code != 0 || !strings.Contains(out, poisoned) || !strings.Contains(out, dropped) || !strings.Contains(out, "strict_dynamic_mapping_exception") {
		t.Fatalf("dead list (%d):\n%s", code, out)
	}
	if out, code := cli("show", "--kind", "product", "--id", poisoned); code != 0 || strings.Count(out, "reason:") != 4 {
		t.Fatalf("dead show (%d):\n%s", code, out)
	}
	// Replay before the fix: still refused, all stay dead, nothing lost.
	if out, code := cli("replay", "--kind", "product", "--id", poisoned); code == 0 || !strings.Contains(out, "4 still dead") {
		t.Fatalf("replay before the fix (%d):\n%s", code, out)
	}

	// The fix: the mapping learns latestReviews' fields.
	if err := elastic.Do(ctx, es, http.MethodPut, "/"+badIndex+"/_mapping",
		`{"properties":{"latestReviews":{"properties":{"id":{"type":"keyword"},"createdAt":{"type":"date"}}}}}`, nil); err != nil {
		t.Fatal(err)
	}
	if out, code := cli("replay", "--kind", "product", "--id", poisoned); code != 0 || !strings.Contains(out, "4 dead letters applied") {
		t.Fatalf("replay after the fix (%d):\n%s", code, out)
	}
	if ls, _ := dead.Letters(ctx, ref); len(ls) != 0 {
		t.Fatalf("%d letters left after the replay", len(ls))
	}
	got, err := searcher.GetProduct(ctx, poisoned)
	if err != nil || got == nil {
		t.Fatal(got, err)
	}
	if err := searcher.MakeVisible(ctx, query.Events.Name); err != nil {
		t.Fatal(err)
	}
	evs, err := searcher.ProductEvents(ctx, poisoned, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := query.FoldProductEvents(evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 {
		t.Errorf("the events index holds %d events of the product, want 4 (created, two reviews, rename)", len(evs))
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(query.Product{}, "Rev", "Counted")); diff != "" {
		t.Errorf("after replay the product differs from the fold of its events (-fold +index):\n%s", diff)
	}
	if got.Name != "Steel kettle" || got.ReviewCount != 2 || got.RatingSum != 6 {
		t.Errorf("product after replay = %+v", got)
	}
	// Later events of the product now apply as usual.
	must(svc.ChangeProduct(ctx, poisoned, m, command.ChangeProductPrice{PriceCents: 250}))
	project()
	if got, _ := searcher.GetProduct(ctx, poisoned); got == nil || got.PriceCents != 250 {
		t.Errorf("after the replay a new event did not apply: %+v", got)
	}

	if out, code := cli("drop", "--kind", "product", "--id", dropped); code != 0 || !strings.Contains(out, "dropped 2 dead letters") {
		t.Fatalf("dead drop (%d):\n%s", code, out)
	}
	if out, code := cli("list"); code != 0 || !strings.Contains(out, "no dead letters") {
		t.Fatalf("dead list after drop (%d):\n%s", code, out)
	}
	p.Idle(ctx)
	if n := gauge(t, reg, "splitstream_projector_dead_letters"); n != 0 {
		t.Errorf("dead letter gauge = %v after replay and drop, want 0", n)
	}
	if _, code := cli("replay"); code == 0 {
		t.Error("replay with neither a document nor --all succeeded")
	}
	if out, code := cli("--help"); code != 0 || !strings.Contains(out, "replay --kind K --id ID|--all") {
		t.Errorf("dead --help (%d):\n%s", code, out)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
