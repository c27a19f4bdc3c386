package elastic_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/query"
)

// full returns a document of type t with every field set, so that every
// field shows in its JSON (omitempty ones too).
func full(t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	switch {
	case t == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)))
		return v
	case t == reflect.TypeFor[json.RawMessage]():
		v.SetBytes([]byte(`{"any":1}`))
		return v
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint64:
		v.SetUint(3)
	case reflect.Float64:
		v.SetFloat(4.5)
	case reflect.Slice:
		v = reflect.Append(reflect.MakeSlice(t, 0, 1), full(t.Elem()))
	case reflect.Map:
		v = reflect.MakeMap(t)
		v.SetMapIndex(full(t.Key()), full(t.Elem()))
	case reflect.Pointer:
		v = reflect.New(t.Elem())
		v.Elem().Set(full(t.Elem()))
	case reflect.Struct:
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				v.Field(i).Set(full(t.Field(i).Type))
			}
		}
	}
	return v
}

// paths lists the field paths of a JSON object, not descending into the
// objects stop names (stored, not indexed).
func paths(prefix string, obj map[string]any, stop map[string]bool, out *[]string) {
	for k, v := range obj {
		p := prefix + k
		*out = append(*out, p)
		if stop[p] {
			continue
		}
		if arr, ok := v.([]any); ok && len(arr) > 0 {
			v = arr[0]
		}
		if m, ok := v.(map[string]any); ok {
			paths(p+".", m, stop, out)
		}
	}
}

// mapped lists the field paths of a mapping's properties, and the ones
// that are stored without being indexed.
func mapped(prefix string, props map[string]any, out *[]string, stored map[string]bool) {
	for k, v := range props {
		p := prefix + k
		*out = append(*out, p)
		m := v.(map[string]any)
		if m["enabled"] == false {
			stored[p] = true
		}
		if sub, ok := m["properties"].(map[string]any); ok {
			mapped(p+".", sub, out, stored)
		}
	}
}

// Every field of every kind's document has a mapping, and every mapped
// field but the retired ones is a field of the document: the strict
// mapping never refuses a document the projector writes.
func TestMappingsAgreeWithDocuments(t *testing.T) {
	for _, k := range query.Kinds() {
		t.Run(k.Index, func(t *testing.T) {
			raw, err := elastic.MappingOf(k)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Dynamic    string         `json:"dynamic"`
				Properties map[string]any `json:"properties"`
			}
			if err := json.Unmarshal([]byte(raw), &m); err != nil {
				t.Fatal(err)
			}
			if m.Dynamic != "strict" {
				t.Errorf("dynamic = %q, want strict", m.Dynamic)
			}
			var want []string
			stored := map[string]bool{}
			mapped("", m.Properties, &want, stored)

			src, err := json.Marshal(full(k.Type).Interface())
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(src, &doc); err != nil {
				t.Fatal(err)
			}
			var got []string
			paths("", doc, stored, &got)
			var retired []string
			if k.Retired != nil {
				for i := range k.Retired.NumField() {
					name, _, _ := strings.Cut(k.Retired.Field(i).Tag.Get("json"), ",")
					retired = append(retired, name)
				}
			}
			for _, p := range got {
				if !slices.Contains(want, p) {
					t.Errorf("document field %s has no mapping", p)
				}
			}
			for _, p := range want {
				if !slices.Contains(got, p) && !slices.Contains(retired, p) {
					t.Errorf("mapped field %s is no field of %s documents", p, k.Name)
				}
			}
			if t.Failed() {
				sort.Strings(got)
				t.Logf("document fields: %v\nmapping: %s", got, raw)
			}
		})
	}
}

// Elasticsearch takes a document of every kind with every field set,
// under the kind's strict mapping.
func TestMappingsTakeFullDocuments(t *testing.T) {
	es, prefix := testenv.Elasticsearch(t)
	ctx := context.Background()
	if err := elastic.NewIndices(es, prefix, time.Second).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range query.Kinds() {
		src, err := json.Marshal(full(k.Type).Interface())
		if err != nil {
			t.Fatal(err)
		}
		if err := elastic.Do(ctx, es, http.MethodPut, "/"+elastic.Alias(prefix, k.Index)+"/_doc/full", string(src), nil); err != nil {
			t.Errorf("%s: %v", k.Name, err)
		}
	}
}
