package es

import (
	"errors"
	"fmt"
)

// Errors a [Store] returns, matched with [errors.Is].
var (
	// ErrWrongExpectedVersion means the stream was not in the expected
	// state. The error is a [*WrongExpectedVersionError] with the details.
	ErrWrongExpectedVersion = errors.New("es: wrong expected version")
	// ErrStreamNotFound means the stream does not exist or was soft-deleted.
	ErrStreamNotFound = errors.New("es: stream not found")
	// ErrStreamDeleted means the stream was tombstoned (or, for an append
	// expecting StreamExists, soft-deleted).
	ErrStreamDeleted = errors.New("es: stream deleted")
	// ErrInvalidArgument means a request was malformed: an empty or
	// over-long stream name, an event without a type, a bad filter.
	ErrInvalidArgument = errors.New("es: invalid argument")
	// ErrMaxAppendSizeExceeded means the events of one append were larger
	// than the store accepts ([MaxAppendSize] by default).
	ErrMaxAppendSizeExceeded = errors.New("es: maximum append size exceeded")
	// ErrUnavailable means the store could not be reached or did not
	// answer in time: its server is down or restarting, the network
	// failed, or a call passed the store's call timeout. Retrying may
	// succeed. A write that failed with it may have been written (when the
	// answer to its commit was lost): retrying it with the same event IDs
	// is safe, since appending the same IDs again is idempotent.
	ErrUnavailable = errors.New("es: store unavailable")
)

// WrongExpectedVersionError reports an append or delete whose expected
// revision did not match the stream. It matches [ErrWrongExpectedVersion].
type WrongExpectedVersionError struct {
	Stream   string
	Expected ExpectedRevision
	// Actual is the stream's state: NoStream, or Exact(last revision).
	Actual ExpectedRevision
}

// Error names the stream and both revisions.
func (e *WrongExpectedVersionError) Error() string {
	return fmt.Sprintf("es: wrong expected version for stream %q: expected %s, actual %s", e.Stream, e.Expected, e.Actual)
}

// Is makes the error match [ErrWrongExpectedVersion].
func (e *WrongExpectedVersionError) Is(target error) bool { return target == ErrWrongExpectedVersion }
