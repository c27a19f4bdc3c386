// Package read is the read schema's GraphQL layer: resolvers that translate
// queries and subscriptions to the query service, and nothing more.
package read

import (
	"encoding/json"
	"fmt"

	"github.com/splitstream/splitstream/query"
)

// Resolver translates GraphQL reads to the query service.
type Resolver struct {
	Reads   *query.Service
	Changes *query.Hub
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefOr[T any](v *T, def T) T {
	if v == nil {
		return def
	}
	return *v
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func productFilter(f *query.ProductFilter) query.ProductFilter {
	return derefOr(f, query.ProductFilter{})
}

func pageInfo[T any](p query.Page[T]) *PageInfo {
	info := &PageInfo{HasNextPage: p.HasNextPage}
	if n := len(p.Cursors); n > 0 {
		info.EndCursor = &p.Cursors[n-1]
	}
	return info
}

func productConnection(page query.ProductPage) *ProductConnection {
	conn := &ProductConnection{PageInfo: pageInfo(page.Page), TotalCount: page.TotalCount,
		Edges: make([]*ProductEdge, len(page.Items)), Facets: &ProductFacets{}}
	for i := range page.Items {
		conn.Edges[i] = &ProductEdge{Cursor: page.Cursors[i], Node: &page.Items[i]}
	}
	for _, c := range page.Facets.Categories {
		conn.Facets.Categories = append(conn.Facets.Categories, &CategoryCount{Category: c.Key, Count: c.Count})
	}
	for _, c := range page.Facets.Ratings {
		var rating int
		fmt.Sscan(c.Key, &rating)
		conn.Facets.Ratings = append(conn.Facets.Ratings, &RatingCount{Rating: rating, Count: c.Count})
	}
	for _, p := range page.Facets.PriceRanges {
		pr := &PriceRangeCount{Count: p.Count}
		if p.From != nil {
			v := int(*p.From)
			pr.FromCents = &v
		}
		if p.To != nil {
			v := int(*p.To)
			pr.ToCents = &v
		}
		conn.Facets.PriceRanges = append(conn.Facets.PriceRanges, pr)
	}
	return conn
}

func historyEntries(evs []query.Event) ([]*HistoryEntry, error) {
	out := make([]*HistoryEntry, len(evs))
	for i, e := range evs {
		var data any
		if err := json.Unmarshal(e.Data, &data); err != nil {
			return nil, fmt.Errorf("event %s data: %w", e.ID, err)
		}
		out[i] = &HistoryEntry{ID: e.ID, Type: e.Type, Version: e.Version, Position: int(e.Position), OccurredAt: e.OccurredAt,
			Data: data, CommandID: nonEmpty(e.Metadata.CommandID), CorrelationID: nonEmpty(e.Metadata.CorrelationID), Actor: nonEmpty(e.Metadata.Actor)}
	}
	return out, nil
}
