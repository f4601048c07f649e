package esdriver

import (
	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
)

// Stream is what a store knows of a stream when it decides an append or a
// delete: the row a store keeps for each stream.
type Stream struct {
	// Last is the revision of the stream's last event, -1 if it has none.
	Last int64
	// Metadata is the stream's metadata; HasMetadata reports that the
	// stream has some (written to its metadata stream, even if empty), which
	// makes it exist for [es.StreamExists] before its first event.
	Metadata    es.StreamMetadata
	HasMetadata bool
	// Tombstoned reports that the stream was tombstoned.
	Tombstoned bool
}

// Events is a store's access to the events of the stream an append goes
// to, for the idempotency check of [DecideAppend]. Its calls run where the
// append runs (under the store's lock, in its transaction).
type Events interface {
	// Find returns the revision of the event with id in the stream, and
	// false if the stream has none.
	Find(id uuid.UUID) (revision uint64, ok bool, err error)
	// Holds reports whether the stream's events from revision from on have
	// the IDs of evs, in order. DecideAppend asks it only for revisions the
	// stream has.
	Holds(from uint64, evs []es.EventData) (bool, error)
}

// Decision is the outcome of [DecideAppend] that is not an error.
type Decision struct {
	// Write reports that the events are to be written, from revision
	// Stream.Last+1 on. With Recreate, the stream was soft-deleted: before
	// its events, the store writes [Recreated] metadata, so that its old
	// events stay hidden.
	Write, Recreate bool
	// Without Write, the append is answered without writing: with
	// [es.AppendResult]{NoStream: true} if NoStream (an empty append to a
	// stream without events), otherwise with the revision Revision of the
	// stream and its position (a repeat of an append already made, whose
	// last event is there, or an empty append).
	NoStream bool
	Revision uint64
}

// DecideAppend applies the expected revision to an append of evs (as
// [PrepareAppend] returns them) to the stream name in the state st, and
// recognises a repeat of an append already made: the same event IDs at the
// places they would take, which is answered with the result of the first
// append rather than written twice (appends are idempotent by event ID).
// Errors are those of package es: [StreamDeleted],
// [es.WrongExpectedVersionError], or an error of events.
func DecideAppend(name string, st Stream, expected es.ExpectedRevision, evs []es.EventData, events Events) (Decision, error) {
	if st.Tombstoned {
		return Decision{}, StreamDeleted(name)
	}
	if d, done, err := expect(name, st, expected, evs, events); done || err != nil {
		return d, err
	}
	switch {
	case len(evs) > 0:
		return Decision{Write: true, Recreate: IsDeleted(st.Metadata)}, nil
	case st.Last < 0:
		return Decision{NoStream: true}, nil
	}
	return Decision{Revision: uint64(st.Last)}, nil
}

// expect checks expected against st and recognises a repeat. done reports
// that the append is answered with d or err.
func expect(name string, st Stream, expected es.ExpectedRevision, evs []es.EventData, events Events) (d Decision, done bool, err error) {
	deleted := IsDeleted(st.Metadata)
	wrong := func() (Decision, bool, error) {
		return Decision{}, true, WrongExpectedVersion(name, expected, st.Last)
	}
	if expected.IsStreamExists() {
		if deleted {
			return Decision{}, true, StreamDeleted(name)
		}
		if st.Last < 0 && !st.HasMetadata {
			return wrong()
		}
	}
	if len(evs) > 0 && (expected.IsAny() || expected.IsStreamExists()) {
		rev, found, err := events.Find(evs[0].ID)
		if err != nil || !found {
			return Decision{}, err != nil, err
		}
		if d, done, err := repeat(st, rev, evs, events); done {
			return d, done, err
		}
		return wrong()
	}
	want, ok := wantRevision(expected)
	switch {
	case !ok || want == st.Last:
		return Decision{}, false, nil
	case want > st.Last:
		return wrong()
	}
	if len(evs) > 0 {
		if d, done, err := repeat(st, uint64(want+1), evs, events); done {
			return d, done, err
		}
	}
	if expected.IsNoStream() && deleted {
		return Decision{}, false, nil // recreating a soft-deleted stream
	}
	return wrong()
}

// repeat answers an append of evs that repeats the events of the stream
// from revision from on: done reports that the stream holds them (or that
// looking failed, with err).
func repeat(st Stream, from uint64, evs []es.EventData, events Events) (d Decision, done bool, err error) {
	last := from + uint64(len(evs)) - 1
	if st.Last < 0 || last > uint64(st.Last) {
		return Decision{}, false, nil
	}
	held, err := events.Holds(from, evs)
	return Decision{Revision: last}, held || err != nil, err
}

// wantRevision returns the last revision that NoStream (-1) or Exact(n)
// expects.
func wantRevision(expected es.ExpectedRevision) (int64, bool) {
	if expected.IsNoStream() {
		return -1, true
	}
	if rev, ok := expected.Revision(); ok {
		return int64(min(rev, 1<<63-1)), true
	}
	return 0, false
}

// Recreated returns the metadata that recreating the soft-deleted stream
// st writes before its new events: st's metadata with `$tb` after its last
// event, so that the events from before the delete stay hidden.
func Recreated(st Stream) es.StreamMetadata {
	m := st.Metadata
	m.TruncateBefore = uint64(st.Last + 1)
	return m
}

// DecideDelete applies the expected revision to a soft delete (tombstone
// false) or a tombstone of the stream name in the state st. A soft delete
// needs a stream with events; a tombstone may be written to a stream that
// never existed. A stream that was tombstoned fails with [StreamDeleted].
func DecideDelete(name string, st Stream, expected es.ExpectedRevision, tombstone bool) error {
	if st.Tombstoned {
		return StreamDeleted(name)
	}
	if st.Last < 0 && !tombstone {
		return WrongExpectedVersion(name, expected, st.Last)
	}
	if expected.IsStreamExists() {
		if IsDeleted(st.Metadata) {
			return StreamDeleted(name)
		}
		if st.Last < 0 {
			return WrongExpectedVersion(name, expected, st.Last)
		}
	}
	if want, ok := wantRevision(expected); ok && want != st.Last {
		return WrongExpectedVersion(name, expected, st.Last)
	}
	return nil
}
