package elastic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"

	"github.com/elastic/go-elasticsearch/v8"
	jsonv2 "github.com/go-json-experiment/json"

	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// DocStore is the projector's document store: multi-get with each
// document's sequence number and primary term, and bulk writes guarded by
// them, answered item by item.
type DocStore struct {
	es     *elasticsearch.Client
	prefix string
	// indices, when set, names the index of a kind instead of its alias
	// (a rebuild writes into new indices before they are swapped in).
	indices map[query.Name]string
}

var _ projector.Store = (*DocStore)(nil)

// NewDocStore returns a store on the models' aliases under prefix.
func NewDocStore(es *elasticsearch.Client, prefix string) *DocStore {
	return &DocStore{es: es, prefix: prefix}
}

// NewDocStoreOn returns a store on the given index of each kind.
func NewDocStoreOn(es *elasticsearch.Client, indices map[query.Name]string) *DocStore {
	return &DocStore{es: es, indices: indices}
}

func (s *DocStore) alias(kind query.Name) (string, error) {
	if s.indices != nil {
		if index, ok := s.indices[kind]; ok {
			return index, nil
		}
		return "", fmt.Errorf("no index for %q documents", kind)
	}
	k, ok := query.KindNamed(kind)
	if !ok {
		return "", fmt.Errorf("no index for %q documents", kind)
	}
	return Alias(s.prefix, k.Index), nil
}

// UnavailableError is a request Elasticsearch did not answer with success
// as a whole (unreachable, overloaded, 5xx).
type UnavailableError struct {
	Status int // 0 when there was no answer
	Err    error
}

func (e *UnavailableError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("elasticsearch unavailable: %v", e.Err)
	}
	return fmt.Sprintf("elasticsearch answered %d: %v", e.Status, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Get reads refs with _mget, which is real-time: it sees every write
// Elasticsearch has acknowledged, refreshed or not.
func (s *DocStore) Get(ctx context.Context, refs []projector.Ref) ([]projector.Stored, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	type mgetDoc struct {
		Index string `json:"_index"`
		ID    string `json:"_id"`
	}
	docs := make([]mgetDoc, len(refs))
	for i, r := range refs {
		a, err := s.alias(r.Kind)
		if err != nil {
			return nil, err
		}
		docs[i] = mgetDoc{Index: a, ID: r.ID}
	}
	body, err := json.Marshal(map[string]any{"docs": docs})
	if err != nil {
		return nil, err
	}
	var res struct {
		Docs []struct {
			Index       string          `json:"_index"`
			ID          string          `json:"_id"`
			Found       bool            `json:"found"`
			SeqNo       int64           `json:"_seq_no"`
			PrimaryTerm int64           `json:"_primary_term"`
			Source      json.RawMessage `json:"_source"`
			Error       json.RawMessage `json:"error"`
		} `json:"docs"`
	}
	if err := s.send(ctx, "/_mget?realtime=true", "application/json", body, &res); err != nil {
		return nil, fmt.Errorf("mget %d documents: %w", len(refs), err)
	}
	if len(res.Docs) != len(refs) {
		return nil, fmt.Errorf("mget %d documents: %d answers", len(refs), len(res.Docs))
	}
	out := make([]projector.Stored, len(refs))
	for i, d := range res.Docs {
		if len(d.Error) > 0 && string(d.Error) != "null" {
			// A shard that cannot answer now; the whole read is retried.
			return nil, &UnavailableError{Err: fmt.Errorf("mget %s %s: %s", refs[i].Kind, refs[i].ID, d.Error)}
		}
		out[i] = projector.Stored{Ref: refs[i], Found: d.Found, SeqNo: d.SeqNo, PrimaryTerm: d.PrimaryTerm, Source: d.Source, Index: d.Index}
	}
	return out, nil
}

// Write sends writes in one _bulk request. Acknowledged items are durable
// (the translog is fsynced before the answer, index.translog.durability
// "request"), so no refresh is asked for.
func (s *DocStore) Write(ctx context.Context, writes []projector.Write) ([]projector.WriteResult, error) {
	if len(writes) == 0 {
		return nil, nil
	}
	size := 0
	for _, w := range writes {
		size += len(w.Doc) + len(w.Ref.ID) + actionLine
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	for _, w := range writes {
		a, err := s.alias(w.Ref.Kind)
		if err != nil {
			return nil, err
		}
		if w.Index != "" {
			a = w.Index // where the batch read it: never across a rebuild's swap
		}
		writeAction(buf, w, a)
		buf.Write(bytes.TrimSpace(w.Doc)) // one line: compact JSON has no newlines
		buf.WriteByte('\n')
	}
	var res struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status      int        `json:"status"`
			SeqNo       int64      `json:"_seq_no"`
			PrimaryTerm int64      `json:"_primary_term"`
			Error       *bulkError `json:"error"`
		} `json:"items"`
	}
	path := "/_bulk?filter_path=errors,items.*.status,items.*._seq_no,items.*._primary_term,items.*.error.type,items.*.error.reason"
	if err := s.send(ctx, path, "application/x-ndjson", buf.Bytes(), &res); err != nil {
		var tl *tooLargeError
		if errors.As(err, &tl) {
			return s.writeApart(ctx, writes, tl)
		}
		return nil, fmt.Errorf("bulk of %d: %w", len(writes), err)
	}
	if len(res.Items) != len(writes) {
		return nil, fmt.Errorf("bulk of %d: %d answers", len(writes), len(res.Items))
	}
	out := make([]projector.WriteResult, len(writes))
	for i, item := range res.Items {
		for _, r := range item { // one key: the action
			out[i] = projector.WriteResult{SeqNo: r.SeqNo, PrimaryTerm: r.PrimaryTerm}
			if r.Status < 300 {
				continue
			}
			reason := strconv.Itoa(r.Status)
			if r.Error != nil {
				reason = fmt.Sprintf("%d %s: %s", r.Status, r.Error.Type, r.Error.Reason)
			}
			switch {
			case r.Status == http.StatusConflict:
				out[i].Err = fmt.Errorf("%s %s: %w (%s)", writes[i].Ref.Kind, writes[i].Ref.ID, projector.ErrConflict, reason)
			case retiredIndex(r.Status, r.Error.typ()):
				out[i].Err = fmt.Errorf("%s %s: %w (%s)", writes[i].Ref.Kind, writes[i].Ref.ID, projector.ErrRetired, reason)
			default:
				out[i].Err = fmt.Errorf("%s %s: %s", writes[i].Ref.Kind, writes[i].Ref.ID, reason)
				out[i].Retryable = r.Status == http.StatusTooManyRequests || r.Status >= 500
			}
		}
	}
	return out, nil
}

// actionLine is about how long a bulk action line is besides its id.
const actionLine = 128

// writeAction writes w's bulk action line for index.
func writeAction(buf *bytes.Buffer, w projector.Write, index string) {
	switch w.Op {
	case projector.Create:
		buf.WriteString(`{"create":{"_index":`)
	default:
		buf.WriteString(`{"index":{"_index":`)
	}
	writeJSONString(buf, index)
	buf.WriteString(`,"_id":`)
	writeJSONString(buf, w.Ref.ID)
	if w.Op == projector.IfMatch {
		buf.WriteString(`,"if_seq_no":`)
		buf.WriteString(strconv.FormatInt(w.SeqNo, 10))
		buf.WriteString(`,"if_primary_term":`)
		buf.WriteString(strconv.FormatInt(w.PrimaryTerm, 10))
	}
	buf.WriteString("}}\n")
}

// writeJSONString writes s as a JSON string: as is between quotes when it
// is printable ASCII with nothing to escape (ids, index names), else as
// encoding/json quotes it.
func writeJSONString(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s)
			buf.Write(q)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}

// writeApart sends writes one bulk each after Elasticsearch refused them
// together as too large (413): a write refused alone as too large is
// refused for good (the projector dead-letters its events); the others
// go through as usual. Bounded: one request per write.
func (s *DocStore) writeApart(ctx context.Context, writes []projector.Write, whole *tooLargeError) ([]projector.WriteResult, error) {
	if len(writes) == 1 {
		return []projector.WriteResult{{Err: fmt.Errorf("%s %s: 413 request_entity_too_large: %s", writes[0].Ref.Kind, writes[0].Ref.ID, whole.msg)}}, nil
	}
	out := make([]projector.WriteResult, len(writes))
	for i, w := range writes {
		res, err := s.Write(ctx, []projector.Write{w})
		if err != nil {
			return nil, err
		}
		out[i] = res[0]
	}
	return out, nil
}

// tooLargeError is a request Elasticsearch refused as too large as a whole.
type tooLargeError struct{ msg string }

func (e *tooLargeError) Error() string { return "elasticsearch answered 413: " + e.msg }

// ReviewStats sums the current reviews of products with one aggregation
// over the reviews index, after a refresh so that every acknowledged
// review write is counted. The rules are query.StatsOf's. The projector
// asks only when a removal took one of a product's newest reviews away
// (it counts reviews as they come otherwise), so the refresh is rare.
func (s *DocStore) ReviewStats(ctx context.Context, productIDs []string) (map[string]query.ReviewStats, error) {
	out := make(map[string]query.ReviewStats, len(productIDs))
	if len(productIDs) == 0 {
		return out, nil
	}
	index, err := s.alias(query.Reviews.Name)
	if err != nil {
		return nil, err
	}
	if err := s.send(ctx, "/"+index+"/_refresh", "application/json", nil, &struct{}{}); err != nil {
		return nil, fmt.Errorf("refresh reviews: %w", err)
	}
	// Chunks keep each aggregation far below Elasticsearch's bucket limit
	// (search.max_buckets, 65,536: up to 6 buckets per product).
	for len(productIDs) > 0 {
		n := min(len(productIDs), reviewStatsChunk)
		if err := s.reviewStats(ctx, index, productIDs[:n], out); err != nil {
			return nil, err
		}
		productIDs = productIDs[n:]
	}
	return out, nil
}

// reviewStatsChunk is how many products one aggregation sums.
const reviewStatsChunk = 1000

func (s *DocStore) reviewStats(ctx context.Context, index string, productIDs []string, out map[string]query.ReviewStats) error {
	body := map[string]any{
		"size": 0,
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"terms": map[string]any{"productId": productIDs}},
			map[string]any{"term": map[string]any{"removed": false}},
			map[string]any{"range": map[string]any{"version": map[string]any{"gte": 1}}},
			map[string]any{"range": map[string]any{"rating": map[string]any{"gte": 1, "lte": 5}}},
		}}},
		"aggs": map[string]any{"products": map[string]any{
			"terms": map[string]any{"field": "productId", "size": len(productIDs)},
			"aggs": map[string]any{
				"sum":   map[string]any{"sum": map[string]any{"field": "rating"}},
				"stars": map[string]any{"terms": map[string]any{"field": "rating", "size": 5}},
				"latest": map[string]any{"top_hits": map[string]any{
					"size":    query.LatestReviewsKept,
					"sort":    []any{map[string]any{"createdAt": "desc"}, map[string]any{"id": "asc"}},
					"_source": []string{"id", "createdAt"},
				}},
			},
		}},
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var res struct {
		Aggregations struct {
			Products struct {
				Buckets []struct {
					Key   string `json:"key"`
					Count int    `json:"doc_count"`
					Sum   struct {
						Value float64 `json:"value"`
					} `json:"sum"`
					Stars struct {
						Buckets []struct {
							Key   int `json:"key"`
							Count int `json:"doc_count"`
						} `json:"buckets"`
					} `json:"stars"`
					Latest struct {
						Hits struct {
							Hits []struct {
								Source query.ReviewRef `json:"_source"`
							} `json:"hits"`
						} `json:"hits"`
					} `json:"latest"`
				} `json:"buckets"`
			} `json:"products"`
		} `json:"aggregations"`
	}
	if err := s.send(ctx, "/"+index+"/_search", "application/json", raw, &res); err != nil {
		return fmt.Errorf("sum reviews of %d products: %w", len(productIDs), err)
	}
	for _, b := range res.Aggregations.Products.Buckets {
		st := query.ReviewStats{Count: b.Count, Sum: int(math.Round(b.Sum.Value))}
		for _, star := range b.Stars.Buckets {
			if star.Key >= 1 && star.Key <= 5 {
				st.Histogram[star.Key-1] = star.Count
			}
		}
		for _, h := range b.Latest.Hits.Hits {
			st.Latest = append(st.Latest, h.Source)
		}
		out[b.Key] = st
	}
	return nil
}

// send posts body and decodes a 2xx answer into out; anything else is an
// *UnavailableError (429, 5xx, no answer), a *tooLargeError (413) or a
// plain error (other 4xx).
func (s *DocStore) send(ctx context.Context, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	res, err := s.es.Perform(req)
	if err != nil {
		return &UnavailableError{Err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return &UnavailableError{Status: res.StatusCode, Err: err}
	}
	if res.StatusCode >= 300 {
		msg := errors.New(string(bytes.TrimSpace(data[:min(len(data), 512)])))
		if res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500 {
			return &UnavailableError{Status: res.StatusCode, Err: msg}
		}
		if res.StatusCode == http.StatusRequestEntityTooLarge {
			return &tooLargeError{msg: msg.Error()}
		}
		return fmt.Errorf("elasticsearch answered %d: %w", res.StatusCode, msg)
	}
	// The v2 decoder: bulk answers of a thousand items are decoded once a
	// batch, in a third of encoding/json's time.
	return jsonv2.Unmarshal(data, out)
}

// bulkError is a bulk item's error.
type bulkError struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

func (e *bulkError) typ() string {
	if e == nil {
		return ""
	}
	return e.Type
}

// retiredIndex says a bulk item failed because its index was made
// read-only or deleted by a rebuild (projector.ErrRetired).
func retiredIndex(status int, typ string) bool {
	return status == http.StatusForbidden && typ == "cluster_block_exception" ||
		status == http.StatusNotFound && typ == "index_not_found_exception"
}
