package elastic

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// Searcher answers the read side's gets and searches.
type Searcher struct {
	es      *elasticsearch.Client
	prefix  string
	refresh map[string]*coalesce // by model
}

var _ query.Index = (*Searcher)(nil)

// NewSearcher reads the indices under prefix.
func NewSearcher(es *elasticsearch.Client, prefix string) *Searcher {
	refresh := map[string]*coalesce{}
	for _, m := range Models {
		refresh[m] = &coalesce{}
	}
	return &Searcher{es: es, prefix: prefix, refresh: refresh}
}

// Get is a real-time get of one document of k through its alias; nil
// when there is none.
func (s *Searcher) Get(ctx context.Context, k *query.Kind, id string) (*query.Doc, error) {
	docs, err := s.GetMany(ctx, k, []string{id})
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	return &docs[0], nil
}

// GetMany is a real-time multi-get of documents of k through its alias,
// in the order of ids, absent ones left out; with fields, only those are
// read. Rev orders a document's writes (primary term, then sequence
// number).
func (s *Searcher) GetMany(ctx context.Context, k *query.Kind, ids []string, fields ...string) ([]query.Doc, error) {
	var out []query.Doc
	err := s.mget(ctx, k.Index, ids, fields, func(id string, src json.RawMessage, rev int64) error {
		v := k.New()
		if err := json.Unmarshal(src, v); err != nil {
			return err
		}
		out = append(out, query.Doc{ID: id, Value: v, Rev: rev})
		return nil
	})
	return out, err
}

type hit struct {
	Source json.RawMessage `json:"_source"`
	Sort   []any           `json:"sort"`
}

type searchResult struct {
	Hits struct {
		Total struct {
			Value int `json:"value"`
		} `json:"total"`
		Hits []hit `json:"hits"`
	} `json:"hits"`
	Aggregations json.RawMessage `json:"aggregations"`
}

// search runs body on model and decodes first hits into T, fetching one
// extra hit to know whether there is a next page.
func search[T any](ctx context.Context, s *Searcher, model string, body map[string]any, first int) (query.Page[T], json.RawMessage, error) {
	body["size"] = first + 1
	body["track_total_hits"] = true
	raw, err := json.Marshal(body)
	if err != nil {
		return query.Page[T]{}, nil, err
	}
	var res searchResult
	if err := Do(ctx, s.es, http.MethodPost, "/"+Alias(s.prefix, model)+"/_search", string(raw), &res); err != nil {
		return query.Page[T]{}, nil, fmt.Errorf("search %s: %w", model, err)
	}
	page := query.Page[T]{TotalCount: res.Hits.Total.Value}
	hits := res.Hits.Hits
	if len(hits) > first {
		page.HasNextPage = true
		hits = hits[:first]
	}
	for _, h := range hits {
		var item T
		if err := json.Unmarshal(h.Source, &item); err != nil {
			return query.Page[T]{}, nil, fmt.Errorf("decode %s hit: %w", model, err)
		}
		cursor, err := json.Marshal(h.Sort)
		if err != nil {
			return query.Page[T]{}, nil, err
		}
		page.Items = append(page.Items, item)
		page.Cursors = append(page.Cursors, base64.RawURLEncoding.EncodeToString(cursor))
	}
	return page, res.Aggregations, nil
}

// searchAfter decodes an opaque cursor into the sort values to continue from.
func searchAfter(body map[string]any, after string, sortLen int) error {
	if after == "" {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(after)
	var values []any
	if err == nil {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		err = d.Decode(&values)
	}
	if err != nil || len(values) != sortLen {
		return splitstream.Invalid("after", "not a cursor from this query")
	}
	body["search_after"] = values
	return nil
}

func term(field string, v any) map[string]any {
	return map[string]any{"term": map[string]any{field: v}}
}

// SearchProducts runs a product search with filters, sort and facets.
func (s *Searcher) SearchProducts(ctx context.Context, q query.ProductQuery) (query.ProductPage, error) {
	filters := []any{map[string]any{"range": map[string]any{"version": map[string]any{"gte": 1}}}}
	f := q.Filter
	if f.Category != nil {
		filters = append(filters, term("category", *f.Category))
	}
	if f.MinPriceCents != nil || f.MaxPriceCents != nil {
		r := map[string]any{}
		if f.MinPriceCents != nil {
			r["gte"] = *f.MinPriceCents
		}
		if f.MaxPriceCents != nil {
			r["lte"] = *f.MaxPriceCents
		}
		filters = append(filters, map[string]any{"range": map[string]any{"priceCents": r}})
	}
	if f.MinRating != nil {
		filters = append(filters, map[string]any{"range": map[string]any{"averageRating": map[string]any{"gte": *f.MinRating}}})
	}
	if f.InStock != nil {
		filters = append(filters, term("inStock", *f.InStock))
	}
	if f.Status != nil {
		filters = append(filters, term("status", *f.Status))
	}
	boolQuery := map[string]any{"filter": filters}
	if q.Search != "" {
		boolQuery["must"] = []any{map[string]any{"multi_match": map[string]any{
			"query": q.Search, "fields": []string{"name^3", "description"}, "operator": "and", "fuzziness": "AUTO",
		}}}
	}
	var sorts []any
	switch q.Sort {
	case query.SortPriceAsc:
		sorts = []any{map[string]any{"priceCents": "asc"}}
	case query.SortPriceDesc:
		sorts = []any{map[string]any{"priceCents": "desc"}}
	case query.SortRatingDesc:
		sorts = []any{map[string]any{"averageRating": "desc"}, map[string]any{"reviewCount": "desc"}}
	case query.SortNewest:
		sorts = []any{map[string]any{"createdAt": "desc"}}
	default:
		if q.Search != "" {
			sorts = []any{map[string]any{"_score": "desc"}}
		} else {
			sorts = []any{map[string]any{"createdAt": "desc"}}
		}
	}
	sorts = append(sorts, map[string]any{"id": "asc"}) // stable tie-breaker
	body := map[string]any{
		"query":   map[string]any{"bool": boolQuery},
		"sort":    sorts,
		"_source": map[string]any{"excludes": []string{"reviews"}}, // old documents' per-review map
		"aggs": map[string]any{
			"categories": map[string]any{"terms": map[string]any{"field": "category", "size": 50}},
			// No scripts: the integ-test distribution has no Painless.
			"ratings": map[string]any{"histogram": map[string]any{"field": "averageRating",
				"interval": 1, "min_doc_count": 0, "extended_bounds": map[string]any{"min": 0, "max": 5}}},
			"prices": map[string]any{"range": map[string]any{"field": "priceCents", "ranges": []any{
				map[string]any{"to": 1000}, map[string]any{"from": 1000, "to": 5000}, map[string]any{"from": 5000, "to": 10000},
				map[string]any{"from": 10000, "to": 50000}, map[string]any{"from": 50000},
			}}},
		},
	}
	if err := searchAfter(body, q.After, len(sorts)); err != nil {
		return query.ProductPage{}, err
	}
	page, aggs, err := search[query.Product](ctx, s, query.Products.Index, body, q.First)
	if err != nil {
		return query.ProductPage{}, err
	}
	facets, err := decodeFacets(aggs)
	if err != nil {
		return query.ProductPage{}, err
	}
	return query.ProductPage{Page: page, Facets: facets}, nil
}

func decodeFacets(raw json.RawMessage) (query.Facets, error) {
	var aggs struct {
		Categories struct {
			Buckets []struct {
				Key   string `json:"key"`
				Count int    `json:"doc_count"`
			} `json:"buckets"`
		} `json:"categories"`
		Ratings struct {
			Buckets []struct {
				Key   float64 `json:"key"`
				Count int     `json:"doc_count"`
			} `json:"buckets"`
		} `json:"ratings"`
		Prices struct {
			Buckets []struct {
				From  *float64 `json:"from"`
				To    *float64 `json:"to"`
				Count int      `json:"doc_count"`
			} `json:"buckets"`
		} `json:"prices"`
	}
	var f query.Facets
	if len(raw) == 0 {
		return f, nil
	}
	if err := json.Unmarshal(raw, &aggs); err != nil {
		return f, fmt.Errorf("decode facets: %w", err)
	}
	for _, b := range aggs.Categories.Buckets {
		f.Categories = append(f.Categories, query.Count{Key: b.Key, Count: b.Count})
	}
	for _, b := range aggs.Ratings.Buckets {
		f.Ratings = append(f.Ratings, query.Count{Key: strconv.Itoa(int(b.Key)), Count: b.Count})
	}
	for _, b := range aggs.Prices.Buckets {
		pr := query.PriceRange{Count: b.Count}
		if b.From != nil {
			v := int64(*b.From)
			pr.From = &v
		}
		if b.To != nil {
			v := int64(*b.To)
			pr.To = &v
		}
		f.PriceRanges = append(f.PriceRanges, pr)
	}
	return f, nil
}

// SearchReviews pages through a product's current reviews, newest first.
func (s *Searcher) SearchReviews(ctx context.Context, q query.ReviewQuery) (query.Page[query.Review], error) {
	sorts := []any{map[string]any{"createdAt": "desc"}, map[string]any{"id": "asc"}}
	body := map[string]any{
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			term("productId", q.ProductID), term("removed", false), map[string]any{"range": map[string]any{"version": map[string]any{"gte": 1}}},
		}}},
		"sort": sorts,
	}
	if err := searchAfter(body, q.After, len(sorts)); err != nil {
		return query.Page[query.Review]{}, err
	}
	page, _, err := search[query.Review](ctx, s, query.Reviews.Index, body, q.First)
	return page, err
}

// SearchOrders pages through orders, newest first.
func (s *Searcher) SearchOrders(ctx context.Context, q query.OrderQuery) (query.Page[query.Order], error) {
	filters := []any{map[string]any{"range": map[string]any{"version": map[string]any{"gte": 1}}}}
	if q.CustomerID != nil {
		filters = append(filters, term("customerId", *q.CustomerID))
	}
	if q.Status != nil {
		filters = append(filters, term("status", *q.Status))
	}
	sorts := []any{map[string]any{"createdAt": "desc"}, map[string]any{"id": "asc"}}
	body := map[string]any{"query": map[string]any{"bool": map[string]any{"filter": filters}}, "sort": sorts}
	if err := searchAfter(body, q.After, len(sorts)); err != nil {
		return query.Page[query.Order]{}, err
	}
	page, _, err := search[query.Order](ctx, s, query.Orders.Index, body, q.First)
	return page, err
}

// ProductEvents reads a product's events (and its reviews') in position order.
func (s *Searcher) ProductEvents(ctx context.Context, id string, reviews bool, until *time.Time) ([]query.Event, error) {
	var filters []any
	if reviews {
		filters = append(filters, term("productId", id))
	} else {
		filters = append(filters, term("streamId", id))
	}
	if until != nil {
		filters = append(filters, map[string]any{"range": map[string]any{"occurredAt": map[string]any{"lte": until.UTC().Format(time.RFC3339Nano)}}})
	}
	var out []query.Event
	var after string
	for {
		sorts := []any{map[string]any{"position": "asc"}}
		body := map[string]any{"query": map[string]any{"bool": map[string]any{"filter": filters}}, "sort": sorts}
		if err := searchAfter(body, after, 1); err != nil {
			return nil, err
		}
		page, _, err := search[query.Event](ctx, s, query.Events.Index, body, 1000)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if !page.HasNextPage || len(out) >= 100_000 {
			return out, nil
		}
		after = page.Cursors[len(page.Cursors)-1]
	}
}

// MakeVisible refreshes one read index so a search sees every write the
// watermark reports as applied. Concurrent callers for the same index share
// one refresh that started after they asked.
func (s *Searcher) MakeVisible(ctx context.Context, kind query.Name) error {
	k, ok := query.KindNamed(kind)
	if !ok || s.refresh[k.Index] == nil {
		return fmt.Errorf("no index for %q documents", kind)
	}
	return s.refresh[k.Index].Do(ctx, func(ctx context.Context) error {
		return Do(ctx, s.es, http.MethodPost, "/"+Alias(s.prefix, k.Index)+"/_refresh", "", nil)
	})
}

// Checkpoint reads the projector's applied watermark.
func (s *Searcher) Checkpoint(ctx context.Context) (event.Cursor, error) {
	d, err := s.Get(ctx, query.Checkpoints, query.CheckpointID)
	if err != nil || d == nil {
		return event.Cursor{}, err
	}
	cp := d.Value.(*query.Checkpoint)
	return event.Cursor{Tx: cp.Tx, Position: cp.Position}, nil
}

// mget reads ids of model in real time, with only the fields of source
// when it is not empty, and calls each for every document found.
func (s *Searcher) mget(ctx context.Context, model string, ids []string, source []string, each func(id string, src json.RawMessage, rev int64) error) error {
	if len(ids) == 0 {
		return nil
	}
	body := map[string]any{"ids": ids}
	path := "/" + Alias(s.prefix, model) + "/_mget?realtime=true"
	if len(source) > 0 {
		path += "&_source_includes=" + url.QueryEscape(strings.Join(source, ","))
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var res struct {
		Docs []struct {
			ID          string          `json:"_id"`
			Found       bool            `json:"found"`
			SeqNo       int64           `json:"_seq_no"`
			PrimaryTerm int64           `json:"_primary_term"`
			Source      json.RawMessage `json:"_source"`
			Error       *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"docs"`
	}
	if err := Do(ctx, s.es, http.MethodPost, path, string(raw), &res); err != nil {
		return fmt.Errorf("mget %d %s: %w", len(ids), model, err)
	}
	for _, d := range res.Docs {
		if d.Error != nil && d.Error.Type != "index_not_found_exception" {
			return fmt.Errorf("mget %s %s: %s: %s", model, d.ID, d.Error.Type, d.Error.Reason)
		}
		if !d.Found {
			continue
		}
		if err := each(d.ID, d.Source, d.PrimaryTerm<<40|d.SeqNo); err != nil {
			return fmt.Errorf("decode %s %s: %w", model, d.ID, err)
		}
	}
	return nil
}
