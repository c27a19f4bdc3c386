package graph

import (
	"context"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/splitstream/splitstream"
)

// DocumentLimits bound a GraphQL document's size in the terms that make
// gqlgen's work grow: parser tokens, field selections, aliases and nesting.
// They are checked on the parsed document before validation, because
// validation (overlapping-fields merging above all) is quadratic in the
// fields of a selection set and runs before the complexity limit: 5,000
// aliased fields once took a process to 23 GB.
type DocumentLimits struct {
	// MaxTokens stops the parser itself after this many lexer tokens.
	MaxTokens int
	// MaxFields caps field selections; a fragment's fields count once per
	// spread, so nested spreads cannot multiply past it.
	MaxFields int
	// MaxAliases caps fields whose response name differs from their name.
	MaxAliases int
	// MaxDepth caps how deep selections nest (fragments expanded).
	MaxDepth int
}

// DefaultDocumentLimits fit every query the playground tabs, the bench and
// GraphiQL's introspection send (that one is about 600 tokens, 150 fields
// and 13 deep), with room to spare.
var DefaultDocumentLimits = DocumentLimits{MaxTokens: 10_000, MaxFields: 500, MaxAliases: 100, MaxDepth: 15}

var (
	_ graphql.HandlerExtension          = DocumentLimits{}
	_ graphql.OperationParameterMutator = DocumentLimits{}
)

// ExtensionName names the extension for gqlgen.
func (DocumentLimits) ExtensionName() string { return "DocumentLimits" }

// Validate accepts every schema.
func (DocumentLimits) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters runs for every operation on every transport
// (POST, GET, WebSocket subscribe, SSE) before gqlgen parses and
// validates; an error here ends the operation. It runs before persisted
// queries too, so their cache stores only documents within the limits (a
// hash-only request has no query yet, and can only get a stored one). It
// parses once more, which is linear and bounded by MaxTokens, so that the
// refusal costs microseconds.
func (l DocumentLimits) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query == "" {
		return nil // gqlgen reports the missing query itself
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, l.MaxTokens)
	if err != nil {
		var gerr *gqlerror.Error
		if e, ok := err.(*gqlerror.Error); ok {
			gerr = e
		} else {
			gerr = gqlerror.Wrap(err)
		}
		if l.MaxTokens > 0 && strings.HasPrefix(gerr.Message, "exceeded token limit") {
			return limitError("tokens", l.MaxTokens, "the query has more than %d tokens", l.MaxTokens)
		}
		errcode.Set(gerr, errcode.ParseFailed)
		return gerr
	}
	s := measure(doc)
	switch {
	case l.MaxFields > 0 && s.fields > l.MaxFields:
		return limitError("fields", l.MaxFields, "the query selects more than %d fields (a fragment counts once per spread)", l.MaxFields)
	case l.MaxAliases > 0 && s.aliases > l.MaxAliases:
		return limitError("aliases", l.MaxAliases, "the query has more than %d aliases", l.MaxAliases)
	case l.MaxDepth > 0 && s.depth > l.MaxDepth:
		return limitError("depth", l.MaxDepth, "the query nests deeper than %d", l.MaxDepth)
	}
	return nil
}

// UseDocumentLimits checks l before gqlgen parses and validates (through
// CheckedOnce), and gives gqlgen's own parser the same token limit.
func UseDocumentLimits(srv *handler.Server, l DocumentLimits) {
	l = l.OrDefault()
	srv.SetParserTokenLimit(l.MaxTokens)
	srv.Use(CheckedOnce(l))
}

// CheckedOnce applies l to a document the first time it is seen and
// remembers the documents within them (at most 1,000, each at most
// cacheableQueryBytes long, as the parse cache keeps), so a repeated query
// is not parsed once more for the limits alone. Only passes are kept: a
// refused document is measured, and refused, every time.
func CheckedOnce(l DocumentLimits) graphql.HandlerExtension {
	return checkedOnce{l, SmallQueries(1000, func(q string, _ struct{}) int { return len(q) })}
}

type checkedOnce struct {
	limits DocumentLimits
	passed graphql.Cache[struct{}]
}

func (c checkedOnce) ExtensionName() string                     { return c.limits.ExtensionName() }
func (c checkedOnce) Validate(s graphql.ExecutableSchema) error { return c.limits.Validate(s) }

func (c checkedOnce) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query == "" {
		return nil // a persisted query's hash alone: the APQ cache holds only checked documents
	}
	if _, ok := c.passed.Get(ctx, p.Query); ok {
		return nil
	}
	if err := c.limits.MutateOperationParameters(ctx, p); err != nil {
		return err
	}
	c.passed.Add(ctx, p.Query, struct{}{})
	return nil
}

// OrDefault is l, or DefaultDocumentLimits when l is the zero value.
func (l DocumentLimits) OrDefault() DocumentLimits {
	if l == (DocumentLimits{}) {
		return DefaultDocumentLimits
	}
	return l
}

// cacheableQueryBytes is the longest query the parsed-query and persisted-
// query caches keep. Without it, 1,000 valid documents each carrying a
// 1 MiB string literal would pin a gigabyte; with it the caches hold at
// most 1,000 × 16 KiB and 100 × 16 KiB. Longer queries are parsed anew
// each time (and a persisted one is asked for again, as APQ allows).
const cacheableQueryBytes = 16 << 10

// smallQueries is a cache that keeps only entries whose query is at most
// cacheableQueryBytes long (size says how long an entry's query is).
type smallQueries[T any] struct {
	graphql.Cache[T]
	size func(key string, v T) int
}

// SmallQueries is an LRU cache of at most entries that keeps only entries
// whose query (as size measures it) is at most cacheableQueryBytes long: for
// gqlgen's parsed-query and persisted-query caches, here and in the gateway.
func SmallQueries[T any](entries int, size func(key string, v T) int) graphql.Cache[T] {
	return smallQueries[T]{lru.New[T](entries), size}
}

func (c smallQueries[T]) Add(ctx context.Context, key string, v T) {
	if c.size(key, v) <= cacheableQueryBytes {
		c.Cache.Add(ctx, key, v)
	}
}

func limitError(limit string, max int, format string, args ...any) *gqlerror.Error {
	return &gqlerror.Error{
		Message:    fmt.Sprintf(format, args...),
		Extensions: map[string]any{"code": splitstream.EInvalid, "limit": limit, "max": max},
	}
}

// shape is what a selection set costs: its fields, aliases and depth.
type shape struct{ fields, aliases, depth int }

// saturated keeps sums from overflowing on pathological spreads; any
// limit is far below it.
const saturated = 1 << 30

func (s *shape) add(o shape) {
	s.fields = min(s.fields+o.fields, saturated)
	s.aliases = min(s.aliases+o.aliases, saturated)
	s.depth = max(s.depth, o.depth)
}

// measure sums the shape of every operation and every fragment definition
// (validation walks both), expanding spreads once per use and memoizing
// fragments, so its cost is linear in the document.
func measure(doc *ast.QueryDocument) shape {
	m := measurer{frags: map[string]*ast.FragmentDefinition{}, memo: map[string]shape{}, busy: map[string]bool{}}
	for _, f := range doc.Fragments {
		m.frags[f.Name] = f
	}
	var total shape
	for _, op := range doc.Operations {
		total.add(m.set(op.SelectionSet))
	}
	for _, f := range doc.Fragments {
		total.add(m.fragment(f.Name))
	}
	return total
}

type measurer struct {
	frags map[string]*ast.FragmentDefinition
	memo  map[string]shape
	busy  map[string]bool // fragments being measured: a cycle counts nothing here, validation refuses it
}

func (m *measurer) set(ss ast.SelectionSet) shape {
	var s shape
	for _, sel := range ss {
		switch x := sel.(type) {
		case *ast.Field:
			c := m.set(x.SelectionSet)
			c.fields = min(c.fields+1, saturated)
			if x.Alias != "" && x.Alias != x.Name {
				c.aliases = min(c.aliases+1, saturated)
			}
			c.depth++
			s.add(c)
		case *ast.InlineFragment:
			s.add(m.set(x.SelectionSet))
		case *ast.FragmentSpread:
			s.add(m.fragment(x.Name))
		}
	}
	return s
}

func (m *measurer) fragment(name string) shape {
	if s, ok := m.memo[name]; ok {
		return s
	}
	f, ok := m.frags[name]
	if !ok || m.busy[name] {
		return shape{}
	}
	m.busy[name] = true
	s := m.set(f.SelectionSet)
	delete(m.busy, name)
	m.memo[name] = s
	return s
}
