package command

import (
	"fmt"
	"strconv"
	"strings"
)

// Every bound on mutation input lives here. Validation uses these numbers
// and the write schema's descriptions quote them (Limits renders the text a
// test finds in the schema), so a changed limit is changed in one place.
//
// Text is counted in characters (runes), so a name in any script gets the
// same room; at 4 bytes a rune the longest text stays far below
// Elasticsearch's 32,766-byte keyword limit. Ids are counted in bytes: they
// are keys, not prose.
const (
	maxIDBytes = 128 // ids, productIds, customerIds and commandIds
	// maxInternalIDBytes bounds the server's own command ids, which are
	// made of bounded ids ("saga:<order>:release:<product>", at most ~280
	// bytes); never a client input, so not in the schema.
	maxInternalIDBytes  = 512
	maxNameRunes        = 200
	maxCategoryRunes    = 100
	maxDescriptionRunes = 10_000
	maxAuthorRunes      = 100
	maxCommentRunes     = 4_000
	maxReasonRunes      = 1_000
	currencyLetters     = 3 // ISO 4217 shape: three upper-case letters
	maxPriceCents       = 1_000_000_000
	maxStock            = 1_000_000_000 // also the most a restock may add
	maxReserveQuantity  = 1_000         // one saga reservation
	maxOrderLines       = 100
	maxLineQuantity     = 1_000
	minRating           = 1
	maxRating           = 5
	maxAddressRunes     = 1_000
	maxEmailBytes       = 254 // RFC 5321's longest forward path, less its brackets
)

// Limit is one bound, as the write schema documents it.
type Limit struct {
	// Fields are the input fields it bounds, as "InputType.field".
	Fields []string
	// Doc is the sentence the fields' descriptions contain.
	Doc string
}

// Limits returns every bound on the write schema's inputs.
func Limits() []Limit {
	commandIDs := []string{"CreateProductInput.commandId", "RenameProductInput.commandId",
		"ChangeProductDescriptionInput.commandId", "ChangeProductPriceInput.commandId", "RestockProductInput.commandId",
		"DiscontinueProductInput.commandId", "AddReviewInput.commandId", "RemoveReviewInput.commandId",
		"PlaceOrderInput.commandId", "CancelOrderInput.commandId", "RegisterCustomerInput.commandId",
		"RenameCustomerInput.commandId", "ChangeCustomerAddressInput.commandId"}
	expected := []string{"RenameProductInput.expectedVersion", "ChangeProductDescriptionInput.expectedVersion",
		"ChangeProductPriceInput.expectedVersion", "RestockProductInput.expectedVersion",
		"DiscontinueProductInput.expectedVersion", "RemoveReviewInput.expectedVersion", "CancelOrderInput.expectedVersion",
		"RenameCustomerInput.expectedVersion", "ChangeCustomerAddressInput.expectedVersion"}
	return []Limit{
		{[]string{"RenameProductInput.id", "ChangeProductDescriptionInput.id", "ChangeProductPriceInput.id",
			"RestockProductInput.id", "DiscontinueProductInput.id", "RemoveReviewInput.id", "CancelOrderInput.id",
			"AddReviewInput.productId", "OrderLineInput.productId", "PlaceOrderInput.customerId",
			"RegisterCustomerInput.id", "RenameCustomerInput.id", "ChangeCustomerAddressInput.id"},
			fmt.Sprintf("1 to %s bytes, no control characters.", num(maxIDBytes))},
		{commandIDs, fmt.Sprintf("At most %s bytes, no control characters.", num(maxIDBytes))},
		{expected, "At least 0."},
		{[]string{"CreateProductInput.name", "RenameProductInput.name", "RegisterCustomerInput.displayName",
			"RenameCustomerInput.displayName"}, textDoc(1, maxNameRunes)},
		{[]string{"RegisterCustomerInput.shippingAddress", "ChangeCustomerAddressInput.shippingAddress"}, textDoc(1, maxAddressRunes)},
		{[]string{"RegisterCustomerInput.email"}, fmt.Sprintf("One plain address (no display name), at most %s bytes.", num(maxEmailBytes))},
		{[]string{"CreateProductInput.category"}, textDoc(1, maxCategoryRunes)},
		{[]string{"CreateProductInput.description", "ChangeProductDescriptionInput.description"}, textDoc(0, maxDescriptionRunes)},
		{[]string{"CreateProductInput.currency"}, fmt.Sprintf("ISO 4217 shape: %d upper-case letters A to Z, such as EUR.", currencyLetters)},
		{[]string{"CreateProductInput.priceCents", "ChangeProductPriceInput.priceCents"}, rangeDoc(1, maxPriceCents)},
		{[]string{"CreateProductInput.stock"}, rangeDoc(0, maxStock)},
		{[]string{"RestockProductInput.quantity"}, rangeDoc(1, maxStock) + " Stock on hand, reserved units included, stays at most " + num(maxStock) + "."},
		{[]string{"AddReviewInput.author"}, textDoc(1, maxAuthorRunes)},
		{[]string{"AddReviewInput.rating"}, rangeDoc(minRating, maxRating)},
		{[]string{"AddReviewInput.comment"}, textDoc(0, maxCommentRunes)},
		{[]string{"PlaceOrderInput.lines"}, fmt.Sprintf("1 to %s lines, one per product.", num(maxOrderLines))},
		{[]string{"OrderLineInput.quantity"}, rangeDoc(1, maxLineQuantity)},
		{[]string{"CancelOrderInput.reason"}, textDoc(0, maxReasonRunes)},
	}
}

func textDoc(lo, hi int) string {
	if lo == 0 {
		return fmt.Sprintf("At most %s characters.", num(hi))
	}
	return fmt.Sprintf("%d to %s characters, leading and trailing spaces trimmed.", lo, num(hi))
}

func rangeDoc(lo, hi int) string { return fmt.Sprintf("%s to %s.", num(lo), num(hi)) }

// num writes n with thousands separators, as people read limits.
func num(n int) string {
	s := strconv.Itoa(n)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	head := len(s) % 3
	if head > 0 {
		b.WriteString(s[:head])
	}
	for i := head; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
