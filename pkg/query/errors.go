package query

import "errors"

// MaxQueryLength is the longest query text IoT Hub accepts, in characters.
const MaxQueryLength = 8192

// Error is a syntax or semantic error in a query. Its message names the
// position and what was expected, e.g.
// "line 1, column 38: expected a value after '='".
type Error struct {
	Pos Pos
	Msg string
	// Err is a sentinel such as ErrQueryTooLong, or nil.
	Err error
}

// Error implements error.
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Unwrap returns the sentinel, for errors.Is.
func (e *Error) Unwrap() error { return e.Err }

// ErrQueryTooLong is wrapped by the *Error Parse returns for query text
// longer than MaxQueryLength characters.
var ErrQueryTooLong = errors.New("query text is longer than 8192 characters")

// ErrInvalidContinuation is returned by Execute for a continuation token that
// was not produced by the same query.
var ErrInvalidContinuation = errors.New("invalid continuation token")
