package command

import (
	"strings"
	"unicode/utf8"

	"github.com/splitstream/splitstream"
)

// Limits on input. Lengths count runes, so a name in any script gets the
// same room.
const (
	maxNameRunes        = 200
	maxCategoryRunes    = 100
	maxDescriptionRunes = 10_000
	maxPriceCents       = 1_000_000_000
	maxStock            = 1_000_000_000
	maxReserveQuantity  = 1_000
	maxAuthorRunes      = 100
	maxCommentRunes     = 4_000
	maxReasonRunes      = 1_000
	maxOrderLines       = 100
	maxLineQuantity     = 1_000
)

// requiredText trims s and checks it is 1 to limit runes. Names and labels are
// stored trimmed so that "Kettle " and "Kettle" are the same name.
func requiredText(field, s string, limit int) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", splitstream.Invalid(field, "%s is not valid UTF-8", field)
	}
	if s == "" {
		return "", splitstream.Invalid(field, "%s is required", field)
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return "", splitstream.Invalid(field, "%s must be at most %d characters, got %d", field, limit, n)
	}
	return s, nil
}

// optionalText checks free text of at most limit runes. It is kept verbatim:
// leading spaces and line breaks may be meant.
func optionalText(field, s string, limit int) error {
	if !utf8.ValidString(s) {
		return splitstream.Invalid(field, "%s is not valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return splitstream.Invalid(field, "%s must be at most %d characters, got %d", field, limit, n)
	}
	return nil
}

func checkPrice(field string, cents int64) error {
	if cents < 1 || cents > maxPriceCents {
		return splitstream.Invalid(field, "%s must be between 1 and %d, got %d", field, maxPriceCents, cents)
	}
	return nil
}

// checkCurrency wants an ISO 4217 style code: three upper-case ASCII letters.
func checkCurrency(field, c string) error {
	ok := len(c) == 3
	for i := 0; ok && i < len(c); i++ {
		ok = c[i] >= 'A' && c[i] <= 'Z'
	}
	if !ok {
		return splitstream.Invalid(field, "%s must be three upper-case letters such as EUR, got %q", field, c)
	}
	return nil
}

func checkRange(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return splitstream.Invalid(field, "%s must be between %d and %d, got %d", field, lo, hi, v)
	}
	return nil
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }
