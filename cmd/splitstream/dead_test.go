package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgxpool"
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
	s := newDeadScenario(t, ctx)
	s.project()
	ref := projector.Ref{Kind: query.Products.Name, ID: s.poisoned}
	s.checkFirstLetters(ref)
	s.checkLaterLetters(ref)
	s.cliBeforeFix()
	s.fixAndReplay(ref)
	s.dropAndHelp()
}

// deadScenario is the store, the projector and the strict products index
// of TestDeadLettersParkReplayAndDrop, with its three products: poisoned
// (refused by the index), other (flowing) and dropped (refused, then dropped).
type deadScenario struct {
	t        *testing.T
	ctx      context.Context
	dbURL    string
	pool     *pgxpool.Pool
	es       *elasticsearch.Client
	prefix   string
	badIndex string
	svc      *command.Service
	dead     *postgres.DeadLetters
	reg      *prometheus.Registry
	p        *projector.Projector
	source   *postgres.RelaySource
	searcher *elastic.Searcher

	at      event.Cursor // how far project has read the log
	handled int          // events project has handled

	poisoned, other, dropped string
}

func newDeadScenario(t *testing.T, ctx context.Context) *deadScenario {
	dbURL, pool := testenv.Postgres(t)
	es, prefix := testenv.Elasticsearch(t)
	s := &deadScenario{t: t, ctx: ctx, dbURL: dbURL, pool: pool, es: es, prefix: prefix}
	s.badIndex = strictProductsIndex(t, ctx, es, prefix)

	store := testenv.EventStore(t, pool)
	var err error
	if s.svc, err = command.NewService(store); err != nil {
		t.Fatal(err)
	}
	s.poisoned, s.other, s.dropped = s.create("Kettle"), s.create("Mug"), s.create("Pan")
	s.review(s.poisoned, 4)
	s.review(s.dropped, 2)

	if s.dead, err = postgres.NewDeadLetters(pool); err != nil {
		t.Fatal(err)
	}
	s.reg = prometheus.NewRegistry()
	s.p, err = projector.New(projector.Config{Store: elastic.NewDocStore(es, prefix), History: store,
		EventLog: testenv.RelaySource(t, pool), DeadLetters: s.dead, Registerer: s.reg, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.source = testenv.RelaySource(t, pool)
	s.searcher = elastic.NewSearcher(es, prefix)
	return s
}

// strictProductsIndex makes the products index one whose mapping refuses
// any latestReviews entry, and returns its name.
func strictProductsIndex(t *testing.T, ctx context.Context, es *elasticsearch.Client, prefix string) string {
	idx := elastic.NewIndices(es, prefix, time.Second)
	if err := idx.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
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
	return badIndex
}

func (s *deadScenario) must(res command.Result, err error) string {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
	return res.ID
}

func (s *deadScenario) create(name string) string {
	return s.must(s.svc.CreateProduct(s.ctx, command.Meta{}, command.CreateProduct{Name: name, Description: "d", Category: "c", PriceCents: 100, Currency: "EUR", Stock: 5}))
}

func (s *deadScenario) review(pid string, rating int) string {
	return s.must(s.svc.AddReview(s.ctx, command.Meta{}, command.AddReview{ProductID: pid, Author: "Ada", Rating: rating, Comment: "fine"}))
}

// project hands the projector every event it has not seen, in one batch,
// and wants all of them acked and the watermark past them.
func (s *deadScenario) project() {
	t, ctx := s.t, s.ctx
	t.Helper()
	// The log's final part may lag a transaction open elsewhere on
	// the cluster: wait until every event is in it.
	var recs []event.Record
	for {
		var total int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total); err != nil {
			t.Fatal(err)
		}
		more, err := s.source.Next(ctx, s.at, 1000)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, more...)
		if len(more) > 0 {
			s.at = more[len(more)-1].Cursor
		}
		if s.handled+len(recs) >= total {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.handled += len(recs)
	msgs := make([]projector.Message, len(recs))
	for i, r := range recs {
		msgs[i] = projector.Message{Record: r, Chained: true}
	}
	vs, err := s.p.Handle(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if v.Action != projector.Ack {
			t.Fatalf("%s: %v %s", recs[i].Envelope.Type, v.Action, v.Reason)
		}
	}
	if s.p.Watermark() != s.at {
		t.Fatalf("watermark %v, want %v: dead letters must be passed", s.p.Watermark(), s.at)
	}
}

// cli runs `splitstream dead args...` against the scenario's servers.
func (s *deadScenario) cli(args ...string) (string, int) {
	env := map[string]string{"DATABASE_URL": s.dbURL, "SPLITSTREAM_INDEX_PREFIX": s.prefix}
	var out, errOut bytes.Buffer
	code := run(s.ctx, append([]string{"dead"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String() + errOut.String(), code
}

// checkFirstLetters: the product was created and reviewed in one batch:
// one write of it, refused, so both events are its letters.
func (s *deadScenario) checkFirstLetters(ref projector.Ref) {
	letters, err := s.dead.Letters(s.ctx, ref)
	if err != nil {
		s.t.Fatal(err)
	}
	if len(letters) != 2 || letters[0].Record.Envelope.Type != "ProductCreated" || letters[1].Record.Envelope.Type != "ReviewAdded" ||
		!strings.Contains(letters[1].Reason, "strict_dynamic_mapping_exception") || !strings.Contains(letters[1].Reason, "product "+s.poisoned) {
		s.t.Fatalf("letters of the poisoned product = %+v", letters)
	}
}

// checkLaterLetters: an event of the poisoned product follows its letters;
// the others flow.
func (s *deadScenario) checkLaterLetters(ref projector.Ref) {
	t, ctx, m := s.t, s.ctx, command.Meta{}
	s.must(s.svc.ChangeProduct(ctx, s.poisoned, m, command.RenameProduct{Name: "Steel kettle"}))
	s.review(s.poisoned, 2)
	s.must(s.svc.ChangeProduct(ctx, s.other, m, command.RenameProduct{Name: "Big mug"}))
	s.project()
	letters, err := s.dead.Letters(ctx, ref)
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
	if got, err := s.product(ctx, s.other); err != nil || got == nil || got.Name != "Big mug" {
		t.Fatalf("the other product = %+v, %v; it should keep flowing", got, err)
	}
	if got, _ := s.product(ctx, s.poisoned); got != nil {
		t.Fatalf("the poisoned product = %+v; it should stay as it was before its first dead letter (absent)", got)
	}
	if n := gauge(t, s.reg, "splitstream_projector_dead_letters"); n != 6 {
		t.Errorf("dead letter gauge = %v, want 6 (4 of the poisoned product, 2 of the dropped one)", n)
	}
}

// cliBeforeFix lists and shows the letters, and replays them while the
// mapping still refuses them: all stay dead, nothing lost.
func (s *deadScenario) cliBeforeFix() {
	t := s.t
	out, code := s.cli("list")
	if code != 0 || !strings.Contains(out, s.poisoned) || !strings.Contains(out, s.dropped) || !strings.Contains(out, "strict_dynamic_mapping_exception") {
		t.Fatalf("dead list (%d):\n%s", code, out)
	}
	if out, code := s.cli("show", "--kind", "product", "--id", s.poisoned); code != 0 || strings.Count(out, "reason:") != 4 {
		t.Fatalf("dead show (%d):\n%s", code, out)
	}
	// Replay before the fix: still refused, all stay dead, nothing lost.
	if out, code := s.cli("replay", "--kind", "product", "--id", s.poisoned); code == 0 || !strings.Contains(out, "4 still dead") {
		t.Fatalf("replay before the fix (%d):\n%s", code, out)
	}
}

// fixAndReplay teaches the mapping latestReviews' fields, replays the
// poisoned product's letters and wants it to equal the fold of its events;
// a later event then applies as usual.
func (s *deadScenario) fixAndReplay(ref projector.Ref) {
	t, ctx := s.t, s.ctx
	if err := elastic.Do(ctx, s.es, http.MethodPut, "/"+s.badIndex+"/_mapping",
		`{"properties":{"latestReviews":{"properties":{"id":{"type":"keyword"},"createdAt":{"type":"date"}}}}}`, nil); err != nil {
		t.Fatal(err)
	}
	if out, code := s.cli("replay", "--kind", "product", "--id", s.poisoned); code != 0 || !strings.Contains(out, "4 dead letters applied") {
		t.Fatalf("replay after the fix (%d):\n%s", code, out)
	}
	if ls, _ := s.dead.Letters(ctx, ref); len(ls) != 0 {
		t.Fatalf("%d letters left after the replay", len(ls))
	}
	got, err := s.product(ctx, s.poisoned)
	if err != nil || got == nil {
		t.Fatal(got, err)
	}
	if err := s.searcher.MakeVisible(ctx, query.Events.Name); err != nil {
		t.Fatal(err)
	}
	evs, err := s.searcher.ProductEvents(ctx, s.poisoned, true, nil)
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
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(query.Product{}, "Counted")); diff != "" {
		t.Errorf("after replay the product differs from the fold of its events (-fold +index):\n%s", diff)
	}
	if got.Name != "Steel kettle" || got.ReviewCount != 2 || got.RatingSum != 6 {
		t.Errorf("product after replay = %+v", got)
	}
	// Later events of the product now apply as usual.
	s.must(s.svc.ChangeProduct(ctx, s.poisoned, command.Meta{}, command.ChangeProductPrice{PriceCents: 250}))
	s.project()
	if got, _ := s.product(ctx, s.poisoned); got == nil || got.PriceCents != 250 {
		t.Errorf("after the replay a new event did not apply: %+v", got)
	}
}

// dropAndHelp drops the other refused product's letters, and checks the
// command's refusals and help.
func (s *deadScenario) dropAndHelp() {
	t := s.t
	if out, code := s.cli("drop", "--kind", "product", "--id", s.dropped); code != 0 || !strings.Contains(out, "dropped 2 dead letters") {
		t.Fatalf("dead drop (%d):\n%s", code, out)
	}
	if out, code := s.cli("list"); code != 0 || !strings.Contains(out, "no dead letters") {
		t.Fatalf("dead list after drop (%d):\n%s", code, out)
	}
	s.p.Idle(s.ctx)
	if n := gauge(t, s.reg, "splitstream_projector_dead_letters"); n != 0 {
		t.Errorf("dead letter gauge = %v after replay and drop, want 0", n)
	}
	if _, code := s.cli("replay"); code == 0 {
		t.Error("replay with neither a document nor --all succeeded")
	}
	if out, code := s.cli("--help"); code != 0 || !strings.Contains(out, "replay --kind K --id ID|--all") {
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

// product reads a product document in real time; nil when absent.
func (s *deadScenario) product(ctx context.Context, id string) (*query.Product, error) {
	d, err := s.searcher.Get(ctx, query.Products, id)
	if err != nil || d == nil {
		return nil, err
	}
	return d.Value.(*query.Product), nil
}
