package command

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/splitstream/splitstream"
)

// Validation checks the shape of a command's input against Limits, before
// the service loads or appends anything: it needs no state, so a refusal
// costs no round trip, and no oversized value ever reaches the store or the
// read side. The aggregates run the same checks again in Decide, so they
// stay safe on their own.

// Validate checks what every command carries besides its input.
func (m Meta) Validate() error {
	if m.CommandID != "" {
		limit := maxIDBytes
		if m.Internal {
			limit = maxInternalIDBytes
		}
		if err := checkIDUpTo("commandId", m.CommandID, limit); err != nil {
			return err
		}
	}
	if m.ExpectedVersion != nil && *m.ExpectedVersion < 0 {
		return splitstream.Invalid("expectedVersion", "expectedVersion must be at least 0, got %d", *m.ExpectedVersion)
	}
	return nil
}

// Validate checks a new product's input.
func (c CreateProduct) Validate() error {
	if _, err := requiredText("name", c.Name, maxNameRunes); err != nil {
		return err
	}
	if _, err := requiredText("category", c.Category, maxCategoryRunes); err != nil {
		return err
	}
	if err := optionalText("description", c.Description, maxDescriptionRunes); err != nil {
		return err
	}
	if err := checkPrice("priceCents", c.PriceCents); err != nil {
		return err
	}
	if err := checkCurrency("currency", c.Currency); err != nil {
		return err
	}
	return checkRange("stock", c.Stock, 0, maxStock)
}

// Validate checks a new name.
func (c RenameProduct) Validate() error {
	_, err := requiredText("name", c.Name, maxNameRunes)
	return err
}

// Validate checks a new description.
func (c ChangeProductDescription) Validate() error {
	return optionalText("description", c.Description, maxDescriptionRunes)
}

// Validate checks a new price.
func (c ChangeProductPrice) Validate() error { return checkPrice("priceCents", c.PriceCents) }

// Validate checks the units added.
func (c RestockProduct) Validate() error { return checkRange("quantity", c.Quantity, 1, maxStock) }

// Validate has nothing to check.
func (DiscontinueProduct) Validate() error { return nil }

// Validate checks a saga reservation.
func (c ReserveStock) Validate() error {
	if err := checkID("orderId", c.OrderID); err != nil {
		return err
	}
	return checkRange("quantity", c.Quantity, 1, maxReserveQuantity)
}

// Validate checks a saga release.
func (c ReleaseStock) Validate() error { return checkID("orderId", c.OrderID) }

// Validate checks a new review's input (not its product, which is state).
func (c AddReview) Validate() error {
	if err := checkID("productId", c.ProductID); err != nil {
		return err
	}
	if _, err := requiredText("author", c.Author, maxAuthorRunes); err != nil {
		return err
	}
	if err := checkRange("rating", c.Rating, minRating, maxRating); err != nil {
		return err
	}
	return optionalText("comment", c.Comment, maxCommentRunes)
}

// Validate has nothing to check.
func (RemoveReview) Validate() error { return nil }

// Validate checks an order's customer and lines. Prices are checked by
// Decide: the service fills them in from the products.
func (c PlaceOrder) Validate() error {
	if err := checkID("customerId", c.CustomerID); err != nil {
		return err
	}
	if n := len(c.Lines); n < 1 || n > maxOrderLines {
		return splitstream.Invalid("lines", "an order has 1 to %d lines, got %d", maxOrderLines, n)
	}
	seen := make(map[string]int, len(c.Lines))
	for i, l := range c.Lines {
		field := fmt.Sprintf("lines[%d].productId", i)
		if err := checkID(field, l.ProductID); err != nil {
			return err
		}
		if first, dup := seen[l.ProductID]; dup {
			return splitstream.Invalid(field, "product %s is already in lines[%d]; order it once with the total quantity", l.ProductID, first)
		}
		seen[l.ProductID] = i
		if err := checkRange(fmt.Sprintf("lines[%d].quantity", i), l.Quantity, 1, maxLineQuantity); err != nil {
			return err
		}
	}
	return nil
}

// Validate has nothing to check.
func (ConfirmOrder) Validate() error { return nil }

// Validate checks the reason.
func (c RejectOrder) Validate() error { return optionalText("reason", c.Reason, maxReasonRunes) }

// Validate checks the reason.
func (c CancelOrder) Validate() error { return optionalText("reason", c.Reason, maxReasonRunes) }

// checkID wants 1 to maxIDBytes bytes of UTF-8 without control characters:
// ids are keys in Postgres, Elasticsearch keywords and log lines.
func checkID(field, s string) error { return checkIDUpTo(field, s, maxIDBytes) }

func checkIDUpTo(field, s string, limit int) error {
	if blank(s) {
		return splitstream.Invalid(field, "%s is required", field)
	}
	if len(s) > limit {
		return splitstream.Invalid(field, "%s must be at most %d bytes, got %d", field, limit, len(s))
	}
	if !utf8.ValidString(s) {
		return splitstream.Invalid(field, "%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return splitstream.Invalid(field, "%s must not contain control characters", field)
		}
	}
	return nil
}

// requiredText trims s and checks it is 1 to limit runes. Names and labels are
// stored trimmed so that "Kettle " and "Kettle" are the same name.
func requiredText(field, s string, limit int) (string, error) {
	// A cheap bound first: more bytes than 4 per allowed rune cannot fit.
	if len(s) > 4*limit+1024 {
		return "", splitstream.Invalid(field, "%s must be at most %d characters", field, limit)
	}
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
	ok := len(c) == currencyLetters
	for i := 0; ok && i < len(c); i++ {
		ok = c[i] >= 'A' && c[i] <= 'Z'
	}
	if !ok {
		return splitstream.Invalid(field, "%s must be three upper-case letters such as EUR, got %.8q", field, c)
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
