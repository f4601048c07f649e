package es

import (
	"context"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Store is an event store with EventStoreDB's semantics.
//
// Implementations must be safe for concurrent use by multiple goroutines.
// They must pass the conformance suite in package es/estest, which pins down
// the behaviour this documentation describes. Errors that mean something to
// the caller match one of this package's sentinels with [errors.Is]:
// [ErrWrongExpectedVersion], [ErrStreamNotFound], [ErrStreamDeleted],
// [ErrInvalidArgument] and [ErrMaxAppendSizeExceeded].
//
// Iterators returned by reads and subscriptions do no work until ranged over,
// may be ranged over once, and release their resources when the loop ends
// (by break, return, or the end of the data). An error is always the last
// value an iterator yields: a failure is never reported as the end of the
// stream. A read with a cancelled context yields the context's error, even
// when there is nothing to read. Events read are the caller's: a Store
// never hands out byte slices it keeps.
//
// Stream metadata cuts events away before Limit counts: a forwards read
// from a revision that the metadata hides starts at the first event kept.
// A soft-deleted stream keeps its last revision for the expected-revision
// checks: Exact(last) appends (recreating the stream), and a wrong expected
// version reports Actual = Exact(last).
type Store interface {
	// Append writes events to the end of a stream if the stream's current
	// revision matches expected, atomically: all events or none.
	//
	// Appending event IDs that the stream already holds, in the same order,
	// succeeds without writing and reports the original result.
	// An append with no events writes nothing and reports the stream's
	// current state.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...EventData) (AppendResult, error)

	// ReadStream reads the events of one stream. A stream that does not
	// exist, or was soft-deleted, yields [ErrStreamNotFound]; a tombstoned
	// stream yields [ErrStreamDeleted]. Stream metadata ([StreamMetadata])
	// is enforced: events cut away by it are not read.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) iter.Seq2[RecordedEvent, error]

	// ReadAll reads the global log, `$all`, which holds every event of
	// every stream in commit order, including system events.
	ReadAll(ctx context.Context, opts ReadAllOptions) iter.Seq2[RecordedEvent, error]

	// SubscribeStream delivers a stream's events after opts.From, then a
	// [KindCaughtUp] message, then new events as they are appended, until
	// ctx is done (the iterator then yields ctx.Err()) or the loop ends.
	// A stream that does not exist yet is waited for. A stream tombstoned
	// while subscribed delivers its tombstone event, then [ErrStreamDeleted].
	SubscribeStream(ctx context.Context, stream string, opts SubscribeStreamOptions) iter.Seq2[Message, error]

	// SubscribeAll delivers the events of `$all` after opts.From, then a
	// [KindCaughtUp] message, then new events as they are committed, until
	// ctx is done or the loop ends. With a filter, it also delivers
	// [KindCheckpoint] messages (see [Filter]).
	SubscribeAll(ctx context.Context, opts SubscribeAllOptions) iter.Seq2[Message, error]

	// DeleteStream soft-deletes a stream: reads report [ErrStreamNotFound],
	// and a later append recreates the stream with revisions continuing from
	// the old last revision. The expected revision is checked as for
	// Append; deleting a stream that never existed is a wrong expected
	// version, whatever the expected revision.
	DeleteStream(ctx context.Context, stream string, expected ExpectedRevision) (DeleteResult, error)

	// TombstoneStream deletes a stream for ever: every later read, append,
	// delete and subscription of it fails with [ErrStreamDeleted].
	// Tombstoning a stream that does not exist succeeds.
	TombstoneStream(ctx context.Context, stream string, expected ExpectedRevision) (DeleteResult, error)
}

// Content types of event payloads.
const (
	ContentTypeJSON   = "application/json"
	ContentTypeBinary = "application/octet-stream"
)

// EventData is an event to append.
type EventData struct {
	// ID identifies the event. Appending an ID the stream already holds is
	// idempotent. The zero UUID is replaced by a new random one on append
	// ([Registry.Encode] sets one, so that retrying the same EventData is
	// idempotent).
	ID uuid.UUID
	// Type is the event's stable type name, such as "OrderPlaced". Required.
	Type string
	// ContentType of Data: ContentTypeJSON (the default when empty) or
	// ContentTypeBinary.
	ContentType string
	// Data is the payload.
	Data []byte
	// Metadata is the user metadata, JSON by convention (see [Metadata]).
	Metadata []byte
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	ID          uuid.UUID
	Stream      string
	Revision    uint64
	Position    Position
	Type        string
	ContentType string
	Created     time.Time
	Data        []byte
	Metadata    []byte
}

// IsSystem reports whether the event is a system event: its type starts with
// "$" (stream metadata, tombstones and other bookkeeping of the store).
func (e RecordedEvent) IsSystem() bool { return strings.HasPrefix(e.Type, "$") }

// AppendResult reports a successful append.
type AppendResult struct {
	// Revision is the stream's last revision after the append.
	// For an empty append to a stream with no events it is 0 and NoStream
	// reports true.
	Revision uint64
	// Position is the `$all` position of the last event written (or, for an
	// idempotent re-append, of the last event originally written). It is the
	// zero Position when nothing was ever written.
	Position Position
	// NoStream is true when the stream has no events: only possible for an
	// empty append.
	NoStream bool
}

// DeleteResult reports a successful delete or tombstone.
type DeleteResult struct {
	// Position is the `$all` position of the record the delete wrote.
	Position Position
}

// Position is a place in the global log, `$all`. Positions of committed
// events are strictly increasing and greater than zero, so the zero Position,
// [Start], is before every event.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// Start and End are the two ends of `$all`, for reads and subscriptions.
var (
	Start = Position{}
	End   = Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}
)

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.Commit < q.Commit:
		return -1
	case p.Commit > q.Commit:
		return 1
	case p.Prepare < q.Prepare:
		return -1
	case p.Prepare > q.Prepare:
		return 1
	}
	return 0
}

// IsZero reports whether p is [Start].
func (p Position) IsZero() bool { return p == Start }

// String formats p as "C:<commit>/P:<prepare>" (as EventStoreDB does),
// "start" or "end".
func (p Position) String() string {
	switch p {
	case Start:
		return "start"
	case End:
		return "end"
	}
	return "C:" + strconv.FormatUint(p.Commit, 10) + "/P:" + strconv.FormatUint(p.Prepare, 10)
}

// MarshalText implements [encoding.TextMarshaler] with the format of String.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler]; see [ParsePosition].
func (p *Position) UnmarshalText(text []byte) error {
	q, err := ParsePosition(string(text))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// ParsePosition parses the format of [Position.String]: "start", "end" or
// "C:<commit>/P:<prepare>".
func ParsePosition(s string) (Position, error) {
	switch s {
	case "start":
		return Start, nil
	case "end":
		return End, nil
	}
	c, p, ok := strings.Cut(s, "/")
	if !ok || !strings.HasPrefix(c, "C:") || !strings.HasPrefix(p, "P:") {
		return Position{}, fmt.Errorf("%w: position %q: want C:<commit>/P:<prepare>", ErrInvalidArgument, s)
	}
	commit, err1 := strconv.ParseUint(c[2:], 10, 64)
	prepare, err2 := strconv.ParseUint(p[2:], 10, 64)
	if err1 != nil || err2 != nil {
		return Position{}, fmt.Errorf("%w: position %q: not a number", ErrInvalidArgument, s)
	}
	return Position{Commit: commit, Prepare: prepare}, nil
}

// Direction is the direction of a read.
type Direction uint8

// Directions of reads.
const (
	Forwards Direction = iota
	Backwards
)

// String returns "forwards" or "backwards".
func (d Direction) String() string {
	if d == Backwards {
		return "backwards"
	}
	return "forwards"
}

// StreamEnd is the revision that, as [ReadStreamOptions.From], reads
// backwards from a stream's last event.
const StreamEnd uint64 = math.MaxUint64

// ReadStreamOptions select the events of a stream read. The zero value reads
// the whole stream forwards.
type ReadStreamOptions struct {
	// Direction of the read; Forwards by default.
	Direction Direction
	// From is the first revision read (inclusive). Forwards reads start at
	// 0 by default; a Backwards read of the newest events sets From to
	// [StreamEnd].
	From uint64
	// Limit is the maximum number of events read; 0 means no limit.
	Limit uint64
}

// ReadAllOptions select the events of a `$all` read. The zero value reads
// the whole log forwards.
type ReadAllOptions struct {
	// Direction of the read; Forwards by default.
	Direction Direction
	// From is where the read starts: forwards reads include the event at
	// From, backwards reads start strictly before it. [Start] and [End] are
	// the two ends of the log; a Backwards read of the newest events sets
	// From to End.
	From Position
	// Limit is the maximum number of events read; 0 means no limit.
	Limit uint64
}
