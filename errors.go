// Package splitstream holds what every part of the system shares: the error
// type that carries a client-facing code. Domain packages return *Error; the
// GraphQL edge maps it to extensions.code in one place.
package splitstream

import (
	"errors"
	"fmt"
)

// Error codes (extensions.code), as the external contract names them
// (../shared/ARCHITECTURE.md, beside the repository).
const (
	EInvalid         = "BAD_USER_INPUT"
	ENotFound        = "NOT_FOUND"
	EConflict        = "CONFLICT"
	EUnauthenticated = "UNAUTHENTICATED"
	EForbidden       = "FORBIDDEN"
	EInternal        = "INTERNAL"
	EStaleRead       = "STALE_READ"
	ERateLimited     = "RATE_LIMITED"
)

// Error is an error a client may see. Anything that is not an *Error is
// internal and must never reach a client in detail.
type Error struct {
	Code    string
	Message string
	// Field names the offending input field for EInvalid.
	Field string
	// CurrentVersion is the aggregate's version for EConflict, or -1 when unknown.
	CurrentVersion int
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Invalid reports bad input in field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Field: field, Message: fmt.Sprintf(format, args...), CurrentVersion: -1}
}

// NotFound reports a missing thing.
func NotFound(format string, args ...any) *Error {
	return &Error{Code: ENotFound, Message: fmt.Sprintf(format, args...), CurrentVersion: -1}
}

// Conflict reports a version or idempotency conflict; current is the
// aggregate's version now, or -1 when it does not apply.
func Conflict(current int, format string, args ...any) *Error {
	return &Error{Code: EConflict, Message: fmt.Sprintf(format, args...), CurrentVersion: current}
}

// ErrorCode returns the code of err, or EInternal when err carries none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}
