package query_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// orderIndex serves orders from memory and records the last order search.
type orderIndex struct {
	query.Index
	orders map[string]*query.Order
	last   query.OrderQuery
}

func (x *orderIndex) Get(_ context.Context, k *query.Kind, id string) (*query.Doc, error) {
	if o, ok := x.orders[id]; ok && k == query.Orders {
		c := *o
		return &query.Doc{ID: id, Value: &c, Rev: 1}, nil
	}
	return nil, nil
}

func (x *orderIndex) GetMany(context.Context, *query.Kind, []string, ...string) ([]query.Doc, error) {
	return nil, nil
}

func (x *orderIndex) SearchOrders(_ context.Context, q query.OrderQuery) (query.Page[query.Order], error) {
	x.last = q
	return query.Page[query.Order]{}, nil
}

func (x *orderIndex) ProductEvents(context.Context, string, bool, *time.Time) ([]query.Event, error) {
	return nil, nil
}

// noWait fails the test if a read waits for the watermark.
type noWait struct{ t *testing.T }

func (w noWait) WaitFor(context.Context, []event.ReadPoint) error {
	w.t.Error("waited for a token that should have been refused")
	return nil
}

var (
	anon  = context.Background()
	alice = auth.WithCaller(anon, auth.Caller{Subject: "alice"})
	bob   = auth.WithCaller(anon, auth.Caller{Subject: "bob"})
	root  = auth.WithCaller(anon, auth.Caller{Subject: "root", Admin: true})
)

func codeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return splitstream.ErrorCode(err)
}

func TestReadsFollowThePolicy(t *testing.T) {
	idx := &orderIndex{orders: map[string]*query.Order{"o1": {ID: "o1", CustomerID: "alice", Version: 1}}}
	tokens, _ := auth.NewReadTokens([]byte("0123456789abcdef0123456789abcdef"))
	s, err := query.NewService(idx, noWait{t}, time.Second, query.WithGuard(auth.Policy{}), query.WithTokens(tokens))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		ctx  context.Context
		want string // "mine", "null" or an error code
	}{
		"anonymous": {anon, "UNAUTHENTICATED"}, "owner": {alice, "mine"}, "other": {bob, "null"}, "admin": {root, "mine"},
		"invalid": {auth.WithCaller(anon, auth.Caller{Invalid: auth.ErrBadReadToken}), "UNAUTHENTICATED"},
	} {
		o, err := s.Order(c.ctx, "o1", nil)
		got := codeOf(err)
		if err == nil && o == nil {
			got = "null"
		} else if err == nil {
			got = "mine"
		}
		if got != c.want {
			t.Errorf("order by %s: %s, want %s", name, got, c.want)
		}
	}
	// A customer's list is its own, whatever it asks; another's is FORBIDDEN.
	if _, err := s.Orders(alice, query.OrderQuery{}, nil); err != nil || idx.last.CustomerID == nil || *idx.last.CustomerID != "alice" {
		t.Errorf("alice's orders: %v, searched %+v", err, idx.last)
	}
	other := "bob"
	if _, err := s.Orders(alice, query.OrderQuery{CustomerID: &other}, nil); codeOf(err) != "FORBIDDEN" {
		t.Errorf("alice lists bob's: %v", err)
	}
	if _, err := s.Orders(root, query.OrderQuery{}, nil); err != nil || idx.last.CustomerID != nil {
		t.Errorf("admin's orders: %v, searched %+v", err, idx.last)
	}
	if _, err := s.Orders(anon, query.OrderQuery{}, nil); codeOf(err) != "UNAUTHENTICATED" {
		t.Errorf("anonymous orders: %v", err)
	}
	if _, err := s.ProductHistory(alice, "p1", nil); codeOf(err) != "FORBIDDEN" {
		t.Errorf("customer history: %v", err)
	}
	if _, err := s.ProductHistory(root, "p1", nil); err != nil {
		t.Errorf("admin history: %v", err)
	}
	// A forged or unsigned token is BAD_USER_INPUT at once (noWait fails otherwise).
	for _, bad := range []string{event.Cursor{Tx: 1 << 40, Position: 1 << 40}.Token(), "forged"} {
		if _, err := s.Order(root, "o1", &bad); codeOf(err) != "BAD_USER_INPUT" {
			t.Errorf("token %q: %v", bad, err)
		}
	}
}

func TestOrderChangedOnlyForItsCustomer(t *testing.T) {
	idx := &orderIndex{orders: map[string]*query.Order{"o1": {ID: "o1", CustomerID: "alice", Version: 1}}}
	h, err := query.NewHub(idx, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), 8, 100, query.WithGuard(auth.Policy{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.OrderChanged(anon, "o1"); codeOf(err) != "UNAUTHENTICATED" {
		t.Fatalf("anonymous subscribes: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := func(who context.Context) <-chan *query.Order {
		ch, err := h.OrderChanged(auth.WithCaller(ctx, auth.CallerFrom(who)), "o1")
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	mine, others, admins := sub(alice), sub(bob), sub(root)
	h.Publish(ctx, []query.Change{{Kind: query.Orders.Name, ID: "o1"}})
	for name, ch := range map[string]<-chan *query.Order{"owner": mine, "admin": admins} {
		select {
		case o := <-ch:
			if o.ID != "o1" {
				t.Errorf("%s got %+v", name, o)
			}
		default:
			t.Errorf("%s got nothing", name)
		}
	}
	// Publish offers synchronously: what bob would get is there already.
	select {
	case o := <-others:
		t.Errorf("bob got alice's order %+v", o)
	default:
	}
}

// With the read cache in front, the policy is the same: the cache keeps
// documents, and the owner check runs on every read, hit or miss (the
// second round is all hits, after the admin's read filled the cache).
func TestCachedReadsFollowThePolicy(t *testing.T) {
	idx := &orderIndex{orders: map[string]*query.Order{"o1": {ID: "o1", CustomerID: "alice", Version: 1}}}
	cache, err := query.NewCache(idx, 10, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cache.Live(true)
	s, err := query.NewService(cache, noWait{t}, time.Second, query.WithGuard(auth.Policy{}))
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for _, c := range []struct {
			name string
			ctx  context.Context
			want string
		}{{"admin", root, "mine"}, {"other", bob, "null"}, {"anonymous", anon, "UNAUTHENTICATED"}, {"owner", alice, "mine"}} {
			o, err := s.Order(c.ctx, "o1", nil)
			got := codeOf(err)
			if err == nil && o == nil {
				got = "null"
			} else if err == nil {
				got = "mine"
			}
			if got != c.want {
				t.Errorf("round %d: order by %s: %s, want %s", round, c.name, got, c.want)
			}
		}
	}
}
