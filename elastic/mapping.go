package elastic

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/splitstream/splitstream/query"
)

// A kind's mapping is derived from its document type (query.Kind.Type),
// so a document field without a mapping cannot happen: every field with a
// json name is mapped, by its Go type, and the `search` tag says what a
// type alone cannot:
//
//	string             keyword (exact match, ignore_above KeywordIgnoreAbove)
//	search:"text"      full-text only
//	search:"text,keyword"  full text with a "keyword" subfield (ignore_above 256)
//	search:"stored"    kept in _source, not indexed (also every map and json.RawMessage)
//	int, int32         integer; int64, uint64 long; float64 float; bool boolean
//	time.Time          date
//	struct, []struct   object with the struct's fields
//
// Mappings are strict, so a field a document has and its mapping lacks is
// refused (and dead-lettered) rather than guessed. query.Kind.Retired
// keeps the fields older documents may still carry.

// keyword is every exact-match field. ignore_above is the second line of
// defence behind the command side's input limits: Lucene refuses a term
// over 32,766 bytes, which would make Elasticsearch refuse the whole
// document (and, before dead letters, stall the projector). A longer value
// is still stored in _source and returned; it is only not indexed, so it
// cannot be filtered or sorted on. 1,024 characters is far above every
// validated input (ids 128 bytes, names, categories and currencies less)
// and, at up to 4 bytes a character in UTF-8, far below Lucene's limit
// (8,191 characters is the most that always fits).
var keyword = map[string]any{"type": "keyword", "ignore_above": KeywordIgnoreAbove}

// KeywordIgnoreAbove is keyword's ignore_above, for tests.
const KeywordIgnoreAbove = 1024

var (
	keywordText = map[string]any{"type": "text", "fields": map[string]any{"keyword": map[string]any{"type": "keyword", "ignore_above": 256}}}
	text        = map[string]any{"type": "text"}
	stored      = map[string]any{"type": "object", "enabled": false}
	timeType    = reflect.TypeFor[time.Time]()
	rawType     = reflect.TypeFor[json.RawMessage]()
)

// MappingOf returns the strict mapping of k's indices.
func MappingOf(k *query.Kind) (string, error) {
	props, err := properties(k.Type, k.Name)
	if err != nil {
		return "", err
	}
	if k.Retired != nil {
		old, err := properties(k.Retired, k.Name)
		if err != nil {
			return "", err
		}
		for f, m := range old {
			props[f] = m
		}
	}
	out, err := json.Marshal(map[string]any{"dynamic": "strict", "properties": props})
	return string(out), err
}

// properties maps the json fields of struct type t.
func properties(t reflect.Type, kind query.Name) (map[string]any, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s documents: %s is not a struct", kind, t)
	}
	props := map[string]any{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m, err := fieldMapping(f.Type, f.Tag.Get("search"), kind)
		if err != nil {
			return nil, fmt.Errorf("%s documents: field %s: %w", kind, f.Name, err)
		}
		props[name] = m
	}
	return props, nil
}

// fieldMapping maps one field of Go type t with search tag tag.
func fieldMapping(t reflect.Type, tag string, kind query.Name) (map[string]any, error) {
	switch tag {
	case "text":
		return text, nil
	case "text,keyword":
		return keywordText, nil
	case "stored":
		return stored, nil
	case "":
	default:
		return nil, fmt.Errorf("unknown search tag %q", tag)
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "date"}, nil
	case t == rawType || t.Kind() == reflect.Map:
		return stored, nil
	}
	switch t.Kind() {
	case reflect.String:
		return keyword, nil
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int32:
		return map[string]any{"type": "integer"}, nil
	case reflect.Int64, reflect.Uint64:
		return map[string]any{"type": "long"}, nil
	case reflect.Float64:
		return map[string]any{"type": "float"}, nil
	case reflect.Slice:
		return fieldMapping(t.Elem(), tag, kind) // arrays are mapped by their elements
	case reflect.Pointer:
		return fieldMapping(t.Elem(), tag, kind)
	case reflect.Struct:
		props, err := properties(t, kind)
		if err != nil {
			return nil, err
		}
		return map[string]any{"properties": props}, nil
	}
	return nil, fmt.Errorf("no mapping for Go type %s", t)
}
