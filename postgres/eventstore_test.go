package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
)

type world struct {
	t   *testing.T
	ctx context.Context
	svc *command.Service
}

func newWorld(t *testing.T) (world, *pgxpool.Pool) {
	_, pool := testenv.Postgres(t)
	svc, err := command.NewService(testenv.EventStore(t, pool))
	if err != nil {
		t.Fatal(err)
	}
	return world{t: t, ctx: context.Background(), svc: svc}, pool
}

func (w world) must(res command.Result, err error) command.Result {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
	return res
}

func (w world) product() string {
	w.t.Helper()
	return w.must(w.svc.CreateProduct(w.ctx, command.Meta{}, command.CreateProduct{
		Name: "Kettle", Category: "kitchen", PriceCents: 100, Currency: "EUR", Stock: 5})).ID
}

func (w world) discontinue(id string) {
	w.t.Helper()
	w.must(w.svc.ChangeProduct(w.ctx, id, command.Meta{}, command.DiscontinueProduct{}))
}

func (w world) review(productID string) string {
	w.t.Helper()
	return w.must(w.svc.AddReview(w.ctx, command.Meta{}, command.AddReview{ProductID: productID, Author: "Ada", Rating: 4})).ID
}

func (w world) order(productID string) string {
	w.t.Helper()
	return w.must(w.svc.PlaceOrder(w.ctx, command.Meta{}, command.PlaceOrder{
		CustomerID: "ada", Lines: []event.OrderLine{{ProductID: productID, Quantity: 1}}})).ID
}

func countEvents(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A command id already used is answered from its record, before anything is
// decided: for every mutation, a replay after the world changed (so that
// deciding again would refuse, or decide otherwise) returns the first
// result and appends nothing.
func TestReplayAfterTheWorldChanged(t *testing.T) {
	w, pool := newWorld(t)
	for _, c := range replayCases(w) {
		t.Run(c.name, func(t *testing.T) {
			do, change := c.setup()
			m := command.Meta{CommandID: "replay-" + c.name, Actor: "ada"}
			first, err := do(m)
			if err != nil {
				t.Fatal(err)
			}
			change(first)
			before := countEvents(t, pool)
			for range 2 {
				again, err := do(m)
				if err != nil {
					t.Fatalf("replay after the world changed: %v, want the first result %+v", err, first)
				}
				if again != first {
					t.Fatalf("replay answered %+v, want the first result %+v", again, first)
				}
			}
			if after := countEvents(t, pool); after != before {
				t.Fatalf("replays appended %d events", after-before)
			}
		})
	}
}

// replayMutation is a mutation a replay case repeats with the same meta.
type replayMutation func(m command.Meta) (command.Result, error)

// replayCase is a mutation, and what changes the world after its first run.
type replayCase struct {
	name string
	// setup returns the mutation to repeat, and what changes the
	// world after its first run.
	setup func() (replayMutation, func(first command.Result))
}

func replayCases(w world) []replayCase {
	svc, ctx := w.svc, w.ctx
	at := func(v int) *int { return &v }
	type mutation = replayMutation
	return []replayCase{
		{"createProduct", func() (mutation, func(command.Result)) {
			return func(m command.Meta) (command.Result, error) {
				return svc.CreateProduct(ctx, m, command.CreateProduct{Name: "Mug", Category: "kitchen", PriceCents: 100, Currency: "EUR", Stock: 1})
			}, func(first command.Result) { w.discontinue(first.ID) }
		}},
		{"renameProduct", func() (mutation, func(command.Result)) {
			id := w.product()
			return func(m command.Meta) (command.Result, error) {
				return svc.ChangeProduct(ctx, id, m, command.RenameProduct{Name: "Steel kettle"})
			}, func(command.Result) { w.discontinue(id) }
		}},
		{"changeProductDescription", func() (mutation, func(command.Result)) {
			id := w.product()
			return func(m command.Meta) (command.Result, error) {
				return svc.ChangeProduct(ctx, id, m, command.ChangeProductDescription{Description: "Boils."})
			}, func(command.Result) { w.discontinue(id) }
		}},
		{"changeProductPrice", func() (mutation, func(command.Result)) {
			id := w.product()
			return func(m command.Meta) (command.Result, error) {
				return svc.ChangeProduct(ctx, id, m, command.ChangeProductPrice{PriceCents: 250})
			}, func(command.Result) { w.discontinue(id) }
		}},
		{"restockProduct", func() (mutation, func(command.Result)) {
			id := w.product()
			return func(m command.Meta) (command.Result, error) {
				return svc.ChangeProduct(ctx, id, m, command.RestockProduct{Quantity: 3})
			}, func(command.Result) { w.discontinue(id) }
		}},
		{"discontinueProduct", func() (mutation, func(command.Result)) {
			id := w.product()
			return func(m command.Meta) (command.Result, error) {
				m.ExpectedVersion = at(1)
				return svc.ChangeProduct(ctx, id, m, command.DiscontinueProduct{})
			}, func(command.Result) {}
		}},
		{"addReview", func() (mutation, func(command.Result)) {
			id := w.product()
			return func(m command.Meta) (command.Result, error) {
				return svc.AddReview(ctx, m, command.AddReview{ProductID: id, Author: "Ada", Rating: 5, Comment: "Good."})
			}, func(command.Result) { w.discontinue(id) }
		}},
		{"removeReview", func() (mutation, func(command.Result)) {
			id := w.review(w.product())
			return func(m command.Meta) (command.Result, error) {
				return svc.RemoveReview(ctx, id, m)
			}, func(command.Result) {}
		}},
		{"placeOrder", func() (mutation, func(command.Result)) {
			id := w.product()
			return func(m command.Meta) (command.Result, error) {
					return svc.PlaceOrder(ctx, m, command.PlaceOrder{CustomerID: "ada", Lines: []event.OrderLine{{ProductID: id, Quantity: 2}}})
				}, func(command.Result) {
					w.must(svc.ChangeProduct(ctx, id, command.Meta{}, command.ChangeProductPrice{PriceCents: 999}))
					w.discontinue(id)
				}
		}},
		{"cancelOrder", func() (mutation, func(command.Result)) {
			id := w.order(w.product())
			return func(m command.Meta) (command.Result, error) {
				m.ExpectedVersion = at(1)
				return svc.ChangeOrder(ctx, id, m, command.CancelOrder{Reason: "changed my mind"})
			}, func(command.Result) {} // now at version 2: deciding again would conflict
		}},
	}
}

// Snapshots are saved every command.SnapshotEvery events, inside the
// command's transaction, and a command on a long stream decides on the same
// state as a fold of the whole history.
// A command's record is stored under its command type's name, spelled as
// before typed names, so records written by an older build still match a
// retry: the retry replays the first result instead of running again.
func TestCommandRecordsKeepTheirStoredNames(t *testing.T) {
	w, pool := newWorld(t)
	id := w.product()
	meta := command.Meta{CommandID: "rename-once"}
	first := w.must(w.svc.ChangeProduct(w.ctx, id, meta, command.RenameProduct{Name: "Kettle 2"}))
	var stored string
	if err := pool.QueryRow(w.ctx, `SELECT mutation FROM commands WHERE command_id = $1`, meta.CommandID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != "renameProduct" {
		t.Fatalf("stored under %q, want renameProduct", stored)
	}
	// A row as an older build wrote it, moved to another command id.
	if _, err := pool.Exec(w.ctx, `INSERT INTO commands (scope, command_id, mutation, input_hash, result)
		SELECT scope, 'rename-old', 'renameProduct', input_hash, result FROM commands WHERE command_id = $1`, meta.CommandID); err != nil {
		t.Fatal(err)
	}
	again := w.must(w.svc.ChangeProduct(w.ctx, id, command.Meta{CommandID: "rename-old"}, command.RenameProduct{Name: "Kettle 2"}))
	if again.Version != first.Version {
		t.Fatalf("the old record was not replayed: version %d, first %d", again.Version, first.Version)
	}
	if n := countEvents(t, pool); n != 2 {
		t.Fatalf("%d events, want 2 (the create and one rename)", n)
	}
}

func TestSnapshotsFollowTheStream(t *testing.T) {
	w, pool := newWorld(t)
	store := testenv.EventStore(t, pool)
	id := w.product()
	order := w.order(id)
	w.must(w.svc.ChangeProduct(w.ctx, id, command.Meta{Internal: true}, command.ReserveStock{OrderID: order, Quantity: 2}))
	n := 3*command.SnapshotEvery + 7
	for i := 3; i <= n; i++ {
		w.must(w.svc.ChangeProduct(w.ctx, id, command.Meta{}, command.RestockProduct{Quantity: 1}))
	}
	var version, fold int
	if err := pool.QueryRow(w.ctx, `SELECT version, fold_version FROM snapshots WHERE stream_id = $1`, id).Scan(&version, &fold); err != nil {
		t.Fatal(err)
	}
	if version != 3*command.SnapshotEvery || fold != command.ProductFoldVersion {
		t.Fatalf("snapshot at v%d fold %d, want v%d fold %d", version, fold, 3*command.SnapshotEvery, command.ProductFoldVersion)
	}
	snap, tail, err := store.LoadSince(w.ctx, id, command.ProductFoldVersion)
	if err != nil {
		t.Fatal(err)
	}
	if snap == nil || snap.Version != version || len(tail) != n-version || tail[0].Version != version+1 {
		t.Fatalf("LoadSince: snapshot %+v and %d events, want v%d and %d from v%d", snap, len(tail), version, n-version, version+1)
	}
	all, err := store.Load(w.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]event.Payload, len(all))
	for i, e := range all {
		if ps[i], err = e.Payload(); err != nil {
			t.Fatal(err)
		}
	}
	want := command.FoldProduct(id, ps)
	var got command.Product
	if err := json.Unmarshal(snap.State, &got); err != nil {
		t.Fatal(err)
	}
	tailPs := make([]event.Payload, len(tail))
	for i, e := range tail {
		tailPs[i], _ = e.Payload()
	}
	for _, p := range tailPs {
		got = got.Apply(p)
	}
	if got.Version != want.Version || got.Stock != want.Stock || got.Reserved[order] != 2 || want.Reserved[order] != 2 {
		t.Fatalf("snapshot + tail = %+v, full fold = %+v", got, want)
	}

	// A no-op answers the token of the stream's last event, whether or
	// not that event is in the snapshot.
	res := w.must(w.svc.ChangeProduct(w.ctx, id, command.Meta{}, command.RenameProduct{Name: "Kettle"}))
	last := all[len(all)-1]
	var tx int64
	if err := pool.QueryRow(w.ctx, `SELECT tx_id::text::bigint FROM events WHERE position = $1`, last.Position).Scan(&tx); err != nil {
		t.Fatal(err)
	}
	if res.Version != n || res.Token != (event.Cursor{Tx: uint64(tx), Position: last.Position}).Token() {
		t.Fatalf("no-op answered %+v, want version %d and the last event's token", res, n)
	}

	// A snapshot of another fold version is ignored and replaced; the
	// decision is still right (stock on hand counts the reservation).
	if _, err := pool.Exec(w.ctx, `UPDATE snapshots SET fold_version = fold_version + 100, state = '{"Stock": -1}'`); err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.ChangeProduct(w.ctx, id, command.Meta{}, command.RestockProduct{Quantity: 1_000_000_000 - want.Stock - 2 + 1})
	if code := splitstream.ErrorCode(err); code != splitstream.EInvalid || !strings.Contains(err.Error(), "above the limit") {
		t.Fatalf("restock over the limit: %v, want BAD_USER_INPUT above the limit", err)
	}
	w.must(w.svc.ChangeProduct(w.ctx, id, command.Meta{}, command.RestockProduct{Quantity: 1}))
	if err := pool.QueryRow(w.ctx, `SELECT version, fold_version FROM snapshots WHERE stream_id = $1`, id).Scan(&version, &fold); err != nil {
		t.Fatal(err)
	}
	if version != n+1 || fold != command.ProductFoldVersion {
		t.Fatalf("after a fold change the snapshot is at v%d fold %d, want v%d fold %d", version, fold, n+1, command.ProductFoldVersion)
	}
}

// A command refused by validation loads and appends nothing.
func TestInvalidInputTouchesNothing(t *testing.T) {
	w, pool := newWorld(t)
	long := strings.Repeat("x", 129)
	var lines []event.OrderLine
	for i := range 101 {
		lines = append(lines, event.OrderLine{ProductID: strings.Repeat("p", i+1), Quantity: 1})
	}
	cases := []struct {
		field string
		err   error
	}{
		{"customerId", func() error {
			_, err := w.svc.PlaceOrder(w.ctx, command.Meta{}, command.PlaceOrder{CustomerID: long, Lines: []event.OrderLine{{ProductID: "p", Quantity: 1}}})
			return err
		}()},
		{"lines", func() error {
			_, err := w.svc.PlaceOrder(w.ctx, command.Meta{}, command.PlaceOrder{CustomerID: "ada", Lines: lines})
			return err
		}()},
		{"commandId", func() error {
			_, err := w.svc.AddReview(w.ctx, command.Meta{CommandID: long}, command.AddReview{ProductID: "p", Author: "Ada", Rating: 1})
			return err
		}()},
		{"id", func() error {
			_, err := w.svc.ChangeProduct(w.ctx, long, command.Meta{}, command.RestockProduct{Quantity: 1})
			return err
		}()},
	}
	for _, c := range cases {
		var e *splitstream.Error
		if !asError(c.err, &e) || e.Code != splitstream.EInvalid || e.Field != c.field {
			t.Errorf("%s: got %v, want BAD_USER_INPUT on %s", c.field, c.err, c.field)
		}
	}
	var commands int
	if err := pool.QueryRow(w.ctx, `SELECT count(*) FROM commands`).Scan(&commands); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(t, pool); n != 0 || commands != 0 {
		t.Fatalf("%d events and %d command records after refusals, want none", n, commands)
	}
}

func asError(err error, target **splitstream.Error) bool { return errors.As(err, target) }
