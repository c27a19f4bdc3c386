package query

import "github.com/splitstream/splitstream"

// Bounds on read arguments, checked before any index is asked: an id the
// write side cannot have created, or a cursor or token no read returned,
// answers BAD_USER_INPUT with the field, not a trip to Elasticsearch.
const (
	// MaxIDBytes is the write side's bound on every id.
	MaxIDBytes = 128
	// MaxSearchBytes bounds full-text search input and filter strings.
	MaxSearchBytes = 500
	// MaxCursorBytes is well above any cursor a page returns (the encoded
	// sort values of one hit).
	MaxCursorBytes = 1024
	// MaxTokenBytes is well above any read-your-writes token a mutation
	// returns, signed or not.
	MaxTokenBytes = 1024
)

func checkLen(field, v string, max int) error {
	if len(v) > max {
		return splitstream.Invalid(field, "at most %d bytes", max)
	}
	return nil
}

func checkID(field, id string) error { return checkLen(field, id, MaxIDBytes) }

func checkOptionalID(field string, id *string) error {
	if id == nil {
		return nil
	}
	return checkID(field, *id)
}

func checkFilter(f ProductFilter) error {
	if f.Category != nil {
		return checkLen("filter.category", *f.Category, MaxSearchBytes)
	}
	return nil
}
