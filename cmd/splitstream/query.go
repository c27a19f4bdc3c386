package main

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/graph/read"
	"github.com/splitstream/splitstream/ops"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/tracing"
)

// queryRole serves the read schema from Elasticsearch alone. It learns what
// changed, and how far the projector got, from the projector's notices.
func (a *app) queryRole(ctx context.Context) (role, error) {
	es, err := a.elasticsearch(ctx)
	if err != nil {
		return role{}, err
	}
	conn, err := a.rabbitmq(ctx)
	if err != nil {
		return role{}, err
	}
	if err := elastic.NewIndices(es, a.cfg.IndexPrefix, a.cfg.RefreshInterval).Ensure(ctx); err != nil {
		return role{}, err
	}
	acc, err := a.access(ctx)
	if err != nil {
		return role{}, err
	}
	searcher := elastic.NewSearcher(es, a.cfg.IndexPrefix)
	var index query.Index = searcher
	var cache *query.Cache
	var ahead func()
	if a.cfg.QueryCacheSize > 0 {
		if cache, err = query.NewCache(searcher, a.cfg.QueryCacheSize, a.reg); err != nil {
			return role{}, err
		}
		index, ahead = cache, cache.Clear
	}
	tracker, err := query.NewMarks(searcher.LaneCheckpoint, 50*time.Millisecond, ahead)
	if err != nil {
		return role{}, err
	}
	reads, err := query.NewService(index, tracker, a.cfg.ConsistencyTimeout, query.WithGuard(auth.Policy{}), query.WithTokens(acc.tokens))
	if err != nil {
		return role{}, err
	}
	hub, err := query.NewHub(searcher, a.log, a.reg, 64, 50_000, query.WithGuard(auth.Policy{}))
	if err != nil {
		return role{}, err
	}
	ws, capSubs := graph.WebSocket(graph.WebSocketOptions{
		InitTimeout:      a.cfg.WSInitTimeout,
		KeepAlive:        a.cfg.WSKeepAlive,
		MaxSubscriptions: a.cfg.WSMaxSubscriptions,
		Origins:          origins(a.cfg.AllowedOrigins),
		Authenticate:     acc.verifier.ConnectionInit,
		WriteTimeout:     a.cfg.Limits.WSWriteTimeout,
		MaxMessageBytes:  a.cfg.Limits.WSMaxMessage,
	})
	schema := read.NewExecutableSchema(read.Config{Resolvers: &read.Resolver{Reads: reads, Changes: hub}, Complexity: read.Complexity()})
	srv := graph.NewServer(schema, graph.Options{
		Log:              a.log,
		ComplexityLimit:  a.cfg.ComplexityLimit,
		Introspection:    a.cfg.Introspection,
		Document:         a.cfg.Limits.Document,
		Transports:       []graphql.Transport{ws, transport.SSE{KeepAlivePingInterval: a.cfg.WSKeepAlive}},
		AroundOperations: capSubs,
		AroundResponses:  freshness(tracker),
		Tracer:           a.tracer(),
	})
	metrics := ops.NewHTTPMetrics(a.reg, roleQuery)
	notices := a.noticeWorker(conn, tracker, hub, cache)
	return role{
		name:    roleQuery,
		addr:    a.cfg.QueryAddr,
		checks:  append([]ops.Check{a.esCheck(es), a.rabbitCheck(conn)}, acc.checks()...),
		workers: []func(context.Context) error{notices},
		routes: func(mux *http.ServeMux) {
			mux.Handle("/graphql", metrics.Wrap("/graphql", acc.middleware(graph.Middleware(a.cfg.MaxBodyBytes, graph.Limit(graph.StreamLimits{
				Timeout: a.cfg.Limits.QueryTimeout, WriteTimeout: a.cfg.Limits.WSWriteTimeout, MaxStreams: a.cfg.Limits.SSEMaxStreams,
			}, srv)))))
			playground := graph.Playground(a.playground(graph.PlaygroundConfig{
				Title: "Splitstream queries", Endpoint: "/graphql", Subscriptions: true, Tabs: graph.QueryTabs(), Hint: queryHint,
			}, devCustomerSubject, false))
			mux.Handle("GET /{$}", playground)
			mux.Handle("GET /playground/", playground)
		},
		inProcess: metrics.Wrap("/graphql", acc.middleware(srv)),
	}, nil
}

// freshness tells every answer how far the read side had applied the log.
func freshness(t *query.Marks) graphql.ResponseMiddleware {
	return func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		res := next(ctx)
		if res == nil {
			return res
		}
		mark, at := t.Newest()
		ext := map[string]any{"appliedPosition": mark.Position}
		if !at.IsZero() {
			ext["appliedAgoMs"] = time.Since(at).Milliseconds()
		}
		if res.Extensions == nil {
			res.Extensions = map[string]any{}
		}
		res.Extensions["freshness"] = ext
		return res
	}
}

// noticeWorker feeds the projector's notices to the read cache (when
// there is one), the watermark and the subscription hub, in that order:
// once a read or a push can show a change, no cached read shows the
// revision before it.
func (a *app) noticeWorker(conn *rabbitmq.Conn, t *query.Marks, h *query.Hub, c *query.Cache) func(context.Context) error {
	var opts []rabbitmq.NoticeOption
	if c != nil {
		opts = append(opts, rabbitmq.OnNoticeStream(c.Live))
	}
	return func(ctx context.Context) error {
		return rabbitmq.ConsumeNotices(ctx, conn, a.log, func(ctx context.Context, n projector.Notice) {
			if c != nil {
				c.Forget(n.Changes)
			}
			lane := event.WholeLog
			if n.Lanes > 0 {
				lane = n.Lane
			}
			t.Advance(lane, n.Watermark)
			push(ctx, tracing.Tracer(a.tp), h, n.Changes)
		}, opts...)
	}
}

// origins splits the allowed-origins setting, dropping empty entries.
func origins(setting string) []string {
	var out []string
	for _, o := range strings.Split(setting, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}
