package esdriver

import (
	"fmt"
	"math"
	"strings"

	"github.com/eventfold/eventfold/es"
)

// Names and numbers the stores write in the log, as EventStoreDB does.
const (
	// MetadataStreamPrefix starts the name of a stream's metadata stream:
	// the metadata of "order-1" lives in "$$order-1" ([es.MetadataStream]).
	MetadataStreamPrefix = "$$"
	// TombstoneRevision is the revision of a tombstone record (2^63-1), of
	// type [es.EventTypeStreamDeleted].
	TombstoneRevision uint64 = math.MaxInt64
	// DeletedTruncateBefore is the `$tb` (TruncateBefore) that a soft
	// delete writes to the stream's metadata (2^63-1).
	DeletedTruncateBefore uint64 = math.MaxInt64
)

// MetadataTarget returns the stream whose metadata stream is name, and
// false if name is not a metadata stream.
func MetadataTarget(name string) (string, bool) {
	if len(name) > len(MetadataStreamPrefix) && strings.HasPrefix(name, MetadataStreamPrefix) {
		return name[len(MetadataStreamPrefix):], true
	}
	return "", false
}

// StreamNotFound returns the error a store reports for a missing or
// soft-deleted stream. It matches [es.ErrStreamNotFound].
func StreamNotFound(stream string) error {
	return fmt.Errorf("%w: %q", es.ErrStreamNotFound, stream)
}

// StreamDeleted returns the error a store reports for a tombstoned stream
// (and for an append expecting [es.StreamExists] to a soft-deleted one). It
// matches [es.ErrStreamDeleted].
func StreamDeleted(stream string) error {
	return fmt.Errorf("%w: %q", es.ErrStreamDeleted, stream)
}

// WrongExpectedVersion returns the error of an append or delete to stream
// that expected expected, where the stream's last revision is last (-1 if
// the stream has no events). It is an [*es.WrongExpectedVersionError].
func WrongExpectedVersion(stream string, expected es.ExpectedRevision, last int64) error {
	actual := es.NoStream
	if last >= 0 {
		actual = es.Exact(uint64(last))
	}
	return &es.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: actual}
}
