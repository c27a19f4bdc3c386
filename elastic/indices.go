package elastic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// Each kind of document (query.Kind) is a read model: an alias
// "<prefix>-<kind.Index>" over a versioned index
// "<prefix>-<kind.Index>-<version>", so a rebuild can fill a new index and
// swap the alias atomically. Its mapping is derived from the kind
// (MappingOf).

// Models lists the rebuildable read models (query.RebuiltKinds' indices).
var Models = func() []string {
	var out []string
	for _, k := range query.RebuiltKinds() {
		out = append(out, k.Index)
	}
	return out
}()

// Alias is the name queries and the projector use for model.
func Alias(prefix, model string) string { return prefix + "-" + model }

// Mapping returns the mapping of model's indices (for tests and tools).
func Mapping(model string) (string, bool) {
	k, ok := query.KindIndexed(model)
	if !ok {
		return "", false
	}
	m, err := MappingOf(k)
	return m, err == nil
}

// Indices creates and swaps the versioned indices behind the aliases.
type Indices struct {
	es      *elasticsearch.Client
	prefix  string
	refresh time.Duration
	now     func() time.Time
}

// NewIndices manages the indices under prefix; refresh is the index refresh
// interval, which bounds how soon a write is visible to search.
func NewIndices(es *elasticsearch.Client, prefix string, refresh time.Duration) *Indices {
	return &Indices{es: es, prefix: prefix, refresh: refresh, now: time.Now}
}

// Prefix is the index prefix.
func (x *Indices) Prefix() string { return x.prefix }

// Ensure creates every model's first index, with its alias, where the alias
// is missing. Many processes may run it at once on a fresh prefix (two
// projectors and a query service starting together): the first index has
// the same name in every process and is created with its alias in one
// request, so exactly one create wins, the others get
// resource_already_exists and take that as done, and no process can leave an
// index of its own behind or give an alias a second write index.
func (x *Indices) Ensure(ctx context.Context) error {
	for _, k := range query.Kinds() {
		m := k.Index
		alias := Alias(x.prefix, m)
		exists, err := x.aliasExists(ctx, alias)
		if err != nil {
			return err
		}
		if exists {
			continue
		}
		err = x.create(ctx, x.firstIndex(m), m, alias)
		if err == nil {
			continue
		}
		// Another process created it first, or a rebuild swapped the alias
		// to a newer index between the check and the create (Elasticsearch
		// then refuses the whole create): either way the alias is there now.
		if exists, aerr := x.aliasExists(ctx, alias); aerr == nil && exists {
			continue
		}
		if isAlreadyExists(err) {
			return fmt.Errorf("index %s exists but alias %s does not point at it (removed by hand?): %w", x.firstIndex(m), alias, err)
		}
		return err
	}
	return nil
}

// firstIndex is the name of model's first index, the same in every process.
// The zeros have the length of Create's timestamps and sort before them, so
// Current's choice of the newest index still holds.
func (x *Indices) firstIndex(model string) string {
	return fmt.Sprintf("%s-%s-%s", x.prefix, model, strings.Repeat("0", len(indexStamp)-1))
}

// indexStamp names a rebuild's index after its creation time (the dot is
// dropped: index names are safer without one).
const indexStamp = "20060102150405.000000000"

// Create makes a new, empty, versioned index for model and returns its name.
func (x *Indices) Create(ctx context.Context, model string) (string, error) {
	name := fmt.Sprintf("%s-%s-%s", x.prefix, model, strings.ReplaceAll(x.now().UTC().Format(indexStamp), ".", ""))
	if err := x.create(ctx, name, model, ""); err != nil {
		return "", err
	}
	return name, nil
}

// create makes index name for model and, when alias is not empty, makes it
// the alias's write index in the same request.
func (x *Indices) create(ctx context.Context, name, model, alias string) error {
	mapping, ok := Mapping(model)
	if !ok {
		return fmt.Errorf("unknown read model %q", model)
	}
	aliases := "{}"
	if alias != "" {
		aliases = fmt.Sprintf(`{%q:{"is_write_index":true}}`, alias)
	}
	body := fmt.Sprintf(`{"settings":{"number_of_shards":1,"number_of_replicas":0,"refresh_interval":%q},"mappings":%s,"aliases":%s}`,
		fmt.Sprintf("%dms", x.refresh.Milliseconds()), mapping, aliases)
	if err := x.do(ctx, http.MethodPut, "/"+name, body, nil); err != nil {
		return fmt.Errorf("create index %s: %w", name, err)
	}
	return nil
}

func isAlreadyExists(err error) bool {
	var re *ResponseError
	return errors.As(err, &re) && re.Status == http.StatusBadRequest && strings.Contains(re.Body, "resource_already_exists_exception")
}

// Current returns the index the model's alias points at.
func (x *Indices) Current(ctx context.Context, model string) (string, error) {
	var got map[string]any
	if err := x.do(ctx, http.MethodGet, "/_alias/"+Alias(x.prefix, model), "", &got); err != nil {
		return "", fmt.Errorf("alias %s: %w", model, err)
	}
	names := make([]string, 0, len(got))
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "", fmt.Errorf("alias %s points nowhere", Alias(x.prefix, model))
	}
	return names[len(names)-1], nil
}

// Swap points model's alias at index (SwapAll with one model).
func (x *Indices) Swap(ctx context.Context, model, index string) ([]string, error) {
	return x.SwapAll(ctx, map[string]string{model: index})
}

// SwapAll refreshes each new index, then points every model's alias at its
// new index in one atomic action, then makes the indices the aliases
// pointed at before read-only, and returns those.
//
// The refresh comes first because a search through the alias sees only
// what the index's last refresh made searchable: swapping to a freshly
// filled index before its first scheduled refresh would show readers an
// empty read model for up to a refresh interval (_refresh answers once the
// refresh is done). One action for all the models, so that a projector
// batch reads every kind from one generation of indices (projector: a
// batch writes back where it read), and the old indices read-only, so
// that a batch that read them before the swap fails its writes there and
// starts over on the new ones (projector.ErrRetired). An index swapped in
// is made writable first (an earlier swap may have retired it).
func (x *Indices) SwapAll(ctx context.Context, indices map[string]string) ([]string, error) {
	models := make([]string, 0, len(indices))
	for m := range indices {
		models = append(models, m)
	}
	sort.Strings(models)
	actions := []map[string]any{}
	var old []string
	for _, model := range models {
		alias, index := Alias(x.prefix, model), indices[model]
		if err := x.do(ctx, http.MethodPut, "/"+index+"/_settings", `{"index.blocks.write":false}`, nil); err != nil {
			return nil, fmt.Errorf("make %s writable before swapping %s to it: %w", index, alias, err)
		}
		if err := x.do(ctx, http.MethodPost, "/"+index+"/_refresh", "", nil); err != nil {
			return nil, fmt.Errorf("refresh %s before swapping %s to it: %w", index, alias, err)
		}
		var got map[string]any
		if err := x.do(ctx, http.MethodGet, "/_alias/"+alias, "", &got); err != nil {
			var re *ResponseError
			if !errors.As(err, &re) || re.Status != http.StatusNotFound {
				return nil, fmt.Errorf("swap %s to %s: %w", alias, index, err)
			}
		}
		for n := range got {
			if n != index {
				old = append(old, n)
				actions = append(actions, map[string]any{"remove": map[string]any{"index": n, "alias": alias}})
			}
		}
		actions = append(actions, map[string]any{"add": map[string]any{"index": index, "alias": alias, "is_write_index": true}})
	}
	body, _ := json.Marshal(map[string]any{"actions": actions})
	if err := x.do(ctx, http.MethodPost, "/_aliases", string(body), nil); err != nil {
		return nil, fmt.Errorf("swap %s: %w", strings.Join(models, ", "), err)
	}
	if len(old) > 0 {
		if err := x.do(ctx, http.MethodPut, "/"+strings.Join(old, ",")+"/_settings", `{"index.blocks.write":true}`, nil); err != nil {
			return old, fmt.Errorf("make the swapped-out indices %s read-only: %w", strings.Join(old, ", "), err)
		}
	}
	return old, nil
}

// Delete removes indices.
func (x *Indices) Delete(ctx context.Context, indices ...string) error {
	if len(indices) == 0 {
		return nil
	}
	return x.do(ctx, http.MethodDelete, "/"+strings.Join(indices, ","), "", nil)
}

// Refresh makes every write to model visible to search now.
func (x *Indices) Refresh(ctx context.Context, model string) error {
	return x.do(ctx, http.MethodPost, "/"+Alias(x.prefix, model)+"/_refresh", "", nil)
}

func (x *Indices) aliasExists(ctx context.Context, alias string) (bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, "/_alias/"+alias, nil)
	res, err := x.es.Perform(req)
	if err != nil {
		return false, fmt.Errorf("alias %s: %w", alias, err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("alias %s: elasticsearch %d", alias, res.StatusCode)
}

// do sends a raw request and decodes a JSON answer into out (if not nil).
func (x *Indices) do(ctx context.Context, method, path, body string, out any) error {
	return Do(ctx, x.es, method, path, body, out)
}

// Do sends a raw JSON request to Elasticsearch; a non-2xx answer is an
// *ResponseError with the status and the start of the body.
func Do(ctx context.Context, es *elasticsearch.Client, method, path, body string, out any) error {
	return send(ctx, es, method, path, "application/json", body, out)
}

// DoNDJSON sends a newline-delimited JSON body (a bulk request).
func DoNDJSON(ctx context.Context, es *elasticsearch.Client, path, body string, out any) error {
	return send(ctx, es, http.MethodPost, path, "application/x-ndjson", body, out)
}

func send(ctx context.Context, es *elasticsearch.Client, method, path, contentType, body string, out any) error {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, r)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := es.Perform(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return &ResponseError{Status: res.StatusCode, Body: string(bytes.TrimSpace(data[:min(len(data), 1024)]))}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// ResponseError is a non-2xx answer from Elasticsearch.
type ResponseError struct {
	Status int
	Body   string
}

func (e *ResponseError) Error() string { return fmt.Sprintf("elasticsearch %d: %s", e.Status, e.Body) }

// StoreOn is a document store on the given index of each kind (a rebuild
// writes into new indices before they are swapped in).
func (x *Indices) StoreOn(indices map[query.Name]string) projector.Store {
	return NewDocStoreOn(x.es, indices)
}

// Live is the document store on the read models' aliases.
func (x *Indices) Live() projector.Store { return NewDocStore(x.es, x.prefix) }

var _ projector.Indices = (*Indices)(nil)
