package es

import (
	"fmt"
)

// Kind tells what a subscription [Message] carries.
type Kind uint8

// Kinds of subscription messages.
const (
	// KindEvent carries an event in Message.Event.
	KindEvent Kind = iota + 1
	// KindCaughtUp says the subscription has delivered the history and is
	// now live. It is sent each time the subscription switches from
	// reading history to live.
	KindCaughtUp
	// KindCheckpoint carries, in Message.Position, a position up to which a
	// filtered `$all` subscription has scanned the log, matching events or
	// not. A consumer that stores it resumes from there (exclusive) without
	// missing an event, and makes progress when nothing matches.
	KindCheckpoint
)

// String returns "event", "caught up" or "checkpoint".
func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindCaughtUp:
		return "caught up"
	case KindCheckpoint:
		return "checkpoint"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Message is what a subscription delivers.
type Message struct {
	Kind Kind
	// Event is set when Kind is KindEvent.
	Event RecordedEvent
	// Position is the checkpoint's position when Kind is KindCheckpoint,
	// and the event's position when Kind is KindEvent. When Kind is
	// KindCaughtUp on a `$all` subscription, it is the position of the last
	// event the subscription has read up to, filtered out or not, if the
	// store reports it (memstore, sqlstore, and kurrentdb on KurrentDB 25.0
	// and later), and the zero Position otherwise: resuming after it skips
	// nothing the subscription would deliver.
	Position Position
}

// StreamCursor is where a stream subscription starts: after a revision
// ([AfterRevision]), at the beginning (the zero value, [FromStreamStart]) or
// at the end ([FromStreamEnd]).
type StreamCursor struct {
	kind     cursorKind
	revision uint64
}

type cursorKind uint8

const (
	cursorStart cursorKind = iota
	cursorEnd
	cursorAfter
)

// Stream cursors that are not a revision.
var (
	// FromStreamStart delivers every event of the stream. It is the zero
	// StreamCursor.
	FromStreamStart = StreamCursor{kind: cursorStart}
	// FromStreamEnd delivers only events appended after the subscription
	// started.
	FromStreamEnd = StreamCursor{kind: cursorEnd}
)

// AfterRevision starts a stream subscription after revision, exclusive: the
// first event delivered is revision+1.
//
// AfterRevision([StreamEnd]) (math.MaxUint64, which has no revision after
// it) is [FromStreamEnd]: only events appended after the subscription
// started, as EventStoreDB does with a revision of 2^64-1 (its own "end" of
// a stream). It never wraps around to the start of the stream.
func AfterRevision(revision uint64) StreamCursor {
	if revision == StreamEnd {
		return FromStreamEnd
	}
	return StreamCursor{kind: cursorAfter, revision: revision}
}

// IsStart reports whether c is FromStreamStart.
func (c StreamCursor) IsStart() bool { return c.kind == cursorStart }

// IsEnd reports whether c is FromStreamEnd.
func (c StreamCursor) IsEnd() bool { return c.kind == cursorEnd }

// Revision returns the revision of an AfterRevision cursor, and false for the
// others.
func (c StreamCursor) Revision() (uint64, bool) { return c.revision, c.kind == cursorAfter }

// String returns "start", "end" or "after <n>".
func (c StreamCursor) String() string {
	switch c.kind {
	case cursorEnd:
		return "end"
	case cursorAfter:
		return fmt.Sprintf("after %d", c.revision)
	}
	return "start"
}

// SubscribeStreamOptions configure a stream subscription. The zero value
// delivers the whole stream, then live events.
type SubscribeStreamOptions struct {
	From StreamCursor
}

// SubscribeAllOptions configure a `$all` subscription. The zero value
// delivers the whole log, then live events, unfiltered.
type SubscribeAllOptions struct {
	// From is the position after which events are delivered (exclusive):
	// [Start] for everything, [End] for only new events, or the position
	// of the last event (or checkpoint) a consumer processed.
	From Position
	// Filter selects the events delivered; nil delivers every event,
	// system events included.
	Filter *Filter
}

// FilterTarget is what a [Filter] matches on.
type FilterTarget uint8

// Filter targets.
const (
	// FilterEventType matches on the event's type.
	FilterEventType FilterTarget = iota
	// FilterStreamName matches on the event's stream name.
	FilterStreamName
)

// DefaultCheckpointInterval is the number of events a filtered subscription
// scans between checkpoints when [Filter.CheckpointInterval] is zero
// (EventStoreDB's window of 32 times a multiplier of 1).
const DefaultCheckpointInterval = 32

// Filter selects the events of a `$all` subscription, by event type or by
// stream name, with either a list of prefixes or a regular expression
// (unanchored, [regexp] syntax). A filtered subscription also delivers a
// checkpoint every CheckpointInterval events scanned, matching or not, and
// one at the end of the history, just before [KindCaughtUp].
type Filter struct {
	On       FilterTarget
	Prefixes []string
	Regex    string
	// CheckpointInterval is the number of events scanned between
	// checkpoints; 0 means DefaultCheckpointInterval.
	CheckpointInterval uint32
}

// ExcludeSystemEvents returns a filter that drops system events (types
// starting with "$"), like EventStoreDB's ExcludeSystemEventsFilter.
func ExcludeSystemEvents() *Filter {
	return &Filter{On: FilterEventType, Regex: `^[^\$].*`}
}

// EventTypePrefixes returns a filter that delivers events whose type starts
// with one of prefixes.
func EventTypePrefixes(prefixes ...string) *Filter {
	return &Filter{On: FilterEventType, Prefixes: prefixes}
}

// StreamPrefixes returns a filter that delivers events whose stream name
// starts with one of prefixes, such as "order-".
func StreamPrefixes(prefixes ...string) *Filter {
	return &Filter{On: FilterStreamName, Prefixes: prefixes}
}

// String describes the filter, for logs and errors.
func (f *Filter) String() string {
	on := "event type"
	if f.On == FilterStreamName {
		on = "stream name"
	}
	if f.Regex != "" {
		return fmt.Sprintf("%s matches %q", on, f.Regex)
	}
	return fmt.Sprintf("%s has prefix %q", on, f.Prefixes)
}
