package estest

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

// streamState is a state a stream can be in before an append or delete.
type streamState uint8

const (
	stateMissing streamState = iota
	stateExisting
	stateSoftDeleted
	stateTombstoned
)

func (st streamState) String() string {
	return [...]string{"OnMissing", "OnExisting", "OnSoftDeleted", "OnTombstoned"}[st]
}

// setUpStream creates a stream of its own in state: three events, then a soft
// delete or a tombstone. It returns the stream's name, its last revision (-1
// when it has none) and the position of the last record written for it.
func setUpStream(t *testing.T, store es.Store, state streamState) (stream string, last int64, pos es.Position) {
	t.Helper()
	stream = newStream("append")
	if state == stateMissing {
		return stream, -1, head(t, store)
	}
	res := appendOK(t, store, stream, es.NoStream, newEvents(3, "Setup")...)
	require.Equal(t, uint64(2), res.Revision, "three events appended to a new stream")
	pos = res.Position
	switch state {
	case stateSoftDeleted:
		del, err := store.DeleteStream(t.Context(), stream, es.Exact(2))
		require.NoError(t, err, "DeleteStream")
		pos = del.Position
	case stateTombstoned:
		del, err := store.TombstoneStream(t.Context(), stream, es.Any)
		require.NoError(t, err, "TombstoneStream")
		pos = del.Position
	}
	return stream, 2, pos
}

type appendOutcome uint8

const (
	outcomeOK appendOutcome = iota
	outcomeWrongVersion
	outcomeDeleted
	outcomeNotApplicable
)

// expectedCase is one expected revision of the matrix, relative to the
// stream's last revision.
type expectedCase struct {
	name     string
	expected func(last int64) es.ExpectedRevision
	outcomes [4]appendOutcome // by streamState
}

var expectedMatrix = []expectedCase{
	{"Any", func(int64) es.ExpectedRevision { return es.Any },
		[4]appendOutcome{outcomeOK, outcomeOK, outcomeOK, outcomeDeleted}},
	{"NoStream", func(int64) es.ExpectedRevision { return es.NoStream },
		[4]appendOutcome{outcomeOK, outcomeWrongVersion, outcomeOK, outcomeDeleted}},
	{"StreamExists", func(int64) es.ExpectedRevision { return es.StreamExists },
		[4]appendOutcome{outcomeWrongVersion, outcomeOK, outcomeDeleted, outcomeDeleted}},
	{"ExactLast", func(last int64) es.ExpectedRevision { return es.Exact(uint64(last)) },
		[4]appendOutcome{outcomeNotApplicable, outcomeOK, outcomeOK, outcomeDeleted}},
	{"ExactLastMinus1", func(last int64) es.ExpectedRevision { return es.Exact(uint64(last - 1)) },
		[4]appendOutcome{outcomeNotApplicable, outcomeWrongVersion, outcomeWrongVersion, outcomeDeleted}},
	{"ExactLastPlus1", func(last int64) es.ExpectedRevision { return es.Exact(uint64(last + 1)) },
		[4]appendOutcome{outcomeWrongVersion, outcomeWrongVersion, outcomeWrongVersion, outcomeDeleted}},
}

func (s *suite) testAppend(t *testing.T) {
	t.Run("ExpectedRevision", func(t *testing.T) {
		for _, c := range expectedMatrix {
			t.Run(c.name, func(t *testing.T) {
				for state := stateMissing; state <= stateTombstoned; state++ {
					if c.outcomes[state] == outcomeNotApplicable {
						continue
					}
					s.run(t, state.String(), func(t *testing.T, store es.Store) {
						testExpectedRevision(t, store, state, c.expected, c.outcomes[state])
					})
				}
			})
		}
		s.run(t, "StreamExists/OnMetadataOnly", func(t *testing.T, store es.Store) {
			// A stream with metadata and no events "exists" for an append.
			stream := newStream("append")
			_, err := es.SetStreamMetadata(t.Context(), store, stream, es.NoStream, es.StreamMetadata{MaxCount: 10})
			require.NoError(t, err, "SetStreamMetadata")
			ev := newEvents(1, "Appended")
			res := appendOK(t, store, stream, es.StreamExists, ev...)
			assert.Equal(t, uint64(0), res.Revision, "Revision of the first event of a stream with only metadata")
			got := readStream(t, store, stream, es.ReadStreamOptions{})
			require.Len(t, got, 1)
			require.Equal(t, ev[0].ID, got[0].ID)
		})
	})

	s.run(t, "Result", func(t *testing.T, store es.Store) {
		stream := newStream("append")
		before := head(t, store)
		r1 := appendOK(t, store, stream, es.NoStream, newEvents(1, "First")...)
		r2 := appendOK(t, store, stream, es.Exact(0), newEvents(2, "Second")...)
		r3 := appendOK(t, store, stream, es.Any, newEvents(1, "Third")...)
		assert.Equal(t, []uint64{0, 2, 3}, []uint64{r1.Revision, r2.Revision, r3.Revision}, "Revision is the stream's new last revision")
		assert.False(t, r1.NoStream || r2.NoStream || r3.NoStream, "NoStream is only for empty appends")
		assert.Equal(t, 1, r1.Position.Compare(before), "Position %v must be after the head %v before the append", r1.Position, before)
		assert.Equal(t, -1, r1.Position.Compare(r2.Position), "Positions must increase across appends: %v, %v", r1.Position, r2.Position)
		assert.Equal(t, -1, r2.Position.Compare(r3.Position), "Positions must increase across appends: %v, %v", r2.Position, r3.Position)

		evs := readStream(t, store, stream, es.ReadStreamOptions{})
		require.Equal(t, []uint64{0, 1, 2, 3}, revisions(evs))
		requireIncreasing(t, evs)
		assert.Equal(t, r1.Position, evs[0].Position, "the result's Position is the position of the last event written")
		assert.Equal(t, r2.Position, evs[2].Position, "the result's Position is the position of the last event written")
		assert.Equal(t, r3.Position, evs[3].Position, "the result's Position is the position of the last event written")
	})

	t.Run("Empty", func(t *testing.T) {
		for _, expected := range []es.ExpectedRevision{es.Any, es.NoStream} {
			s.run(t, "OnMissing/"+expectedName(expected), func(t *testing.T, store es.Store) {
				stream := newStream("append")
				res := appendOK(t, store, stream, expected)
				assert.True(t, res.NoStream, "an empty append to a missing stream reports NoStream")
				assert.Equal(t, uint64(0), res.Revision, "Revision")
				assert.True(t, res.Position.IsZero(), "Position of an empty append to a missing stream: got %v", res.Position)
				require.ErrorIs(t, readStreamErr(t, store, stream, es.ReadStreamOptions{}), es.ErrStreamNotFound, "an empty append writes nothing")
			})
		}
		s.run(t, "OnMissing/StreamExists", func(t *testing.T, store es.Store) {
			stream := newStream("append")
			_, err := store.Append(t.Context(), stream, es.StreamExists)
			requireWrongVersion(t, err, stream, es.StreamExists, es.NoStream)
		})
		for _, expected := range []es.ExpectedRevision{es.Any, es.StreamExists, es.Exact(2)} {
			s.run(t, "OnExisting/"+expectedName(expected), func(t *testing.T, store es.Store) {
				stream, _, pos := setUpStream(t, store, stateExisting)
				res := appendOK(t, store, stream, expected)
				assert.False(t, res.NoStream, "NoStream")
				assert.Equal(t, uint64(2), res.Revision, "an empty append reports the current revision")
				assert.Equal(t, pos, res.Position, "an empty append reports the position of the last event")
				assert.Len(t, readStream(t, store, stream, es.ReadStreamOptions{}), 3, "an empty append writes nothing")
			})
		}
	})

	s.run(t, "GeneratedID", func(t *testing.T, store es.Store) {
		stream := newStream("append")
		evs := newEvents(2, "NoID")
		evs[0].ID, evs[1].ID = uuid.Nil, uuid.Nil
		appendOK(t, store, stream, es.NoStream, evs...)
		got := readStream(t, store, stream, es.ReadStreamOptions{})
		require.Len(t, got, 2)
		assert.NotEqual(t, uuid.Nil, got[0].ID, "a zero event ID is replaced by a generated one")
		assert.NotEqual(t, uuid.Nil, got[1].ID, "a zero event ID is replaced by a generated one")
		assert.NotEqual(t, got[0].ID, got[1].ID, "generated IDs are unique")
	})

	s.run(t, "DefaultContentType", func(t *testing.T, store es.Store) {
		stream := newStream("append")
		evs := newEvents(1, "NoContentType")
		evs[0].ContentType = ""
		appendOK(t, store, stream, es.NoStream, evs...)
		got := readStream(t, store, stream, es.ReadStreamOptions{})
		require.Len(t, got, 1)
		assert.Equal(t, es.ContentTypeJSON, got[0].ContentType, "an empty content type becomes %s", es.ContentTypeJSON)
	})

	s.run(t, "CancelledContext", func(t *testing.T, store es.Store) {
		stream, _, _ := setUpStream(t, store, stateExisting)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := store.Append(ctx, stream, es.Any, newEvents(1, "Cancelled")...)
		require.ErrorIs(t, err, context.Canceled, "Append with a cancelled context")
		_, err = store.DeleteStream(ctx, stream, es.Any)
		require.ErrorIs(t, err, context.Canceled, "DeleteStream with a cancelled context")
		_, err = store.TombstoneStream(ctx, stream, es.Any)
		require.ErrorIs(t, err, context.Canceled, "TombstoneStream with a cancelled context")
		assert.Len(t, readStream(t, store, stream, es.ReadStreamOptions{}), 3, "calls with a cancelled context write nothing")
	})

	t.Run("Idempotent", s.testIdempotent)
}

func testExpectedRevision(t *testing.T, store es.Store, state streamState, expectedFor func(int64) es.ExpectedRevision, outcome appendOutcome) {
	stream, last, pos := setUpStream(t, store, state)
	expected := expectedFor(last)
	evs := newEvents(1, "Appended")
	res, err := store.Append(t.Context(), stream, expected, evs...)

	switch outcome {
	case outcomeOK:
		require.NoErrorf(t, err, "Append with expected revision %v, %s", expected, state)
		want := uint64(last + 1)
		assert.Equal(t, want, res.Revision, "Revision: numbering continues from the last revision")
		assert.False(t, res.NoStream, "NoStream")
		assert.Equal(t, 1, res.Position.Compare(pos), "Position %v must be after %v", res.Position, pos)
		got := readStream(t, store, stream, es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd})
		require.NotEmpty(t, got)
		requireSameEvent(t, evs[0], stream, got[0])
		assert.Equal(t, want, got[0].Revision, "revision of the appended event")
		assert.Equal(t, res.Position, got[0].Position, "position of the appended event")
		if state == stateSoftDeleted {
			assert.Len(t, got, 1, "the events of a soft-deleted stream stay hidden after it is recreated")
		}
	case outcomeWrongVersion:
		actual := es.NoStream
		if last >= 0 {
			actual = es.Exact(uint64(last))
		}
		requireWrongVersion(t, err, stream, expected, actual)
		switch err := readAfterFailedAppend(t, store, stream); state {
		case stateExisting:
			require.NoError(t, err, "ReadStream after a wrong expected version")
		default:
			require.ErrorIs(t, err, es.ErrStreamNotFound, "a failed append must not write")
		}
	case outcomeDeleted:
		require.ErrorIsf(t, err, es.ErrStreamDeleted, "Append with expected revision %v, %s", expected, state)
	}
}

// readAfterFailedAppend reads a stream and returns the error, checking that a
// successful read holds the setup's three events only.
func readAfterFailedAppend(t *testing.T, store es.Store, stream string) error {
	t.Helper()
	evs, err := collect(t, store.ReadStream(t.Context(), stream, es.ReadStreamOptions{}))
	if err == nil {
		require.Equal(t, []uint64{0, 1, 2}, revisions(evs), "a failed append must not write")
	}
	return err
}

func (s *suite) testIdempotent(t *testing.T) {
	// setUp appends A, B, C to a new stream with NoStream.
	setUp := func(t *testing.T, store es.Store) (stream string, evs []es.EventData, orig es.AppendResult, before es.Position) {
		t.Helper()
		stream = newStream("idempotent")
		before = head(t, store)
		evs = newEvents(3, "Idempotent")
		orig = appendOK(t, store, stream, es.NoStream, evs...)
		return stream, evs, orig, before
	}
	// unchanged checks that the stream and `$all` hold n events of stream.
	unchanged := func(t *testing.T, store es.Store, stream string, before es.Position, n int) {
		t.Helper()
		assert.Len(t, readStream(t, store, stream, es.ReadStreamOptions{}), n, "an idempotent append writes nothing to the stream")
		assert.Len(t, readAllSince(t, store, before, stream), n, "an idempotent append writes nothing to $all")
	}

	for _, expected := range []es.ExpectedRevision{es.Any, es.StreamExists, es.NoStream} {
		s.run(t, expectedName(expected), func(t *testing.T, store es.Store) {
			stream, evs, orig, before := setUp(t, store)
			res, err := store.Append(t.Context(), stream, expected, evs...)
			require.NoErrorf(t, err, "appending the same IDs again with %v", expected)
			assert.Equal(t, orig, res, "an idempotent append reports the original result")
			unchanged(t, store, stream, before, 3)
		})
	}
	s.run(t, "Exact", func(t *testing.T, store es.Store) {
		stream, _, _, before := setUp(t, store)
		more := newEvents(2, "More")
		orig := appendOK(t, store, stream, es.Exact(2), more...)
		res, err := store.Append(t.Context(), stream, es.Exact(2), more...)
		require.NoError(t, err, "appending the same IDs again with the original Exact(2)")
		assert.Equal(t, orig, res, "an idempotent append reports the original result")
		unchanged(t, store, stream, before, 5)
	})
	s.run(t, "AfterLaterAppends", func(t *testing.T, store es.Store) {
		stream, evs, orig, before := setUp(t, store)
		appendOK(t, store, stream, es.Exact(2), newEvents(1, "Later")...)
		for _, expected := range []es.ExpectedRevision{es.Any, es.StreamExists, es.NoStream} {
			res, err := store.Append(t.Context(), stream, expected, evs...)
			require.NoErrorf(t, err, "appending the first append's IDs again with %v after a later append", expected)
			assert.Equalf(t, orig, res, "%v: an idempotent append reports the original result", expected)
		}
		unchanged(t, store, stream, before, 4)
	})
	s.run(t, "Prefix", func(t *testing.T, store es.Store) {
		stream, evs, _, before := setUp(t, store)
		all := readStream(t, store, stream, es.ReadStreamOptions{})
		res, err := store.Append(t.Context(), stream, es.Any, evs[:2]...)
		require.NoError(t, err, "appending the first two of three IDs again with Any")
		assert.Equal(t, es.AppendResult{Revision: 1, Position: all[1].Position}, res,
			"an idempotent append of a prefix reports the revision and position of its last event")
		unchanged(t, store, stream, before, 3)
	})

	partial := []struct {
		name     string
		expected es.ExpectedRevision
		events   func(evs []es.EventData) []es.EventData
	}{
		{"Any/LaterIDDiffers", es.Any, func(evs []es.EventData) []es.EventData {
			return []es.EventData{evs[0], newEvents(1, "Other")[0]}
		}},
		{"StreamExists/LaterIDDiffers", es.StreamExists, func(evs []es.EventData) []es.EventData {
			return []es.EventData{evs[0], newEvents(1, "Other")[0]}
		}},
		{"Any/MoreEventsThanWritten", es.Any, func(evs []es.EventData) []es.EventData {
			return append(evs[:3:3], newEvents(1, "Other")...)
		}},
		{"NoStream/LaterIDDiffers", es.NoStream, func(evs []es.EventData) []es.EventData {
			return []es.EventData{evs[0], newEvents(1, "Other")[0]}
		}},
		{"Exact/LaterIDDiffers", es.Exact(0), func(evs []es.EventData) []es.EventData {
			return []es.EventData{evs[1], newEvents(1, "Other")[0]}
		}},
	}
	for _, c := range partial {
		s.run(t, "PartialMatch/"+c.name, func(t *testing.T, store es.Store) {
			stream, evs, _, before := setUp(t, store)
			_, err := store.Append(t.Context(), stream, c.expected, c.events(evs)...)
			requireWrongVersion(t, err, stream, c.expected, es.Exact(2))
			unchanged(t, store, stream, before, 3)
		})
	}
}
