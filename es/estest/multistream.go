package estest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

// testAppendStreams checks [es.MultiStreamAppender], for stores that
// implement it. A store that reports it unsupported skips these subtests.
func (s *suite) testAppendStreams(t *testing.T) {
	// appendStreams calls the store, skipping the subtest if the store
	// cannot serve multi-stream appends.
	appendStreamsCtx := func(ctx context.Context, t *testing.T, store es.Store, parts ...es.StreamAppend) ([]es.AppendResult, error) {
		t.Helper()
		res, err := es.AppendStreams(ctx, store, parts...)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("the store does not serve multi-stream appends: %v", err)
		}
		return res, err
	}
	appendStreams := func(t *testing.T, store es.Store, parts ...es.StreamAppend) ([]es.AppendResult, error) {
		t.Helper()
		return appendStreamsCtx(t.Context(), t, store, parts...)
	}
	// unwritten checks that nothing was written to $all after before for
	// the streams of parts.
	unwritten := func(t *testing.T, store es.Store, before es.Position, parts []es.StreamAppend) {
		t.Helper()
		for _, p := range parts {
			assert.Empty(t, readAllAfter(t, store, before, p.Stream), "a failed multi-stream append writes nothing to %s", p.Stream)
		}
	}

	s.run(t, "Writes", func(t *testing.T, store es.Store) {
		existing, _, _ := setUpStream(t, store, stateExisting)
		fresh := newStream("multi")
		before := head(t, store)
		parts := []es.StreamAppend{
			{Stream: fresh, Expected: es.NoStream, Events: newEvents(2, "MultiA")},
			{Stream: existing, Expected: es.Exact(2), Events: newEvents(3, "MultiB")},
		}
		res, err := appendStreams(t, store, parts...)
		require.NoError(t, err, "AppendStreams")
		require.Len(t, res, 2, "one result per part")
		assert.Equal(t, uint64(1), res[0].Revision, "Revision of the new stream")
		assert.Equal(t, uint64(5), res[1].Revision, "Revision of the existing stream")

		all := append(readAllAfter(t, store, before, fresh), readAllAfter(t, store, before, existing)...)
		slices.SortFunc(all, func(a, b es.RecordedEvent) int { return a.Position.Compare(b.Position) })
		require.Len(t, all, 5, "the events of both parts are in $all")
		for i, want := range append(append([]es.EventData(nil), parts[0].Events...), parts[1].Events...) {
			stream := fresh
			if i >= 2 {
				stream = existing
			}
			requireSameEvent(t, want, stream, all[i])
		}
		requireIncreasing(t, all)
		assert.Equal(t, res[0].Position, all[1].Position, "a part's Position is that of its last event")
		assert.Equal(t, res[1].Position, all[4].Position, "a part's Position is that of its last event")
		assert.Equal(t, []uint64{3, 4, 5}, revisions(readStream(t, store, existing, es.ReadStreamOptions{From: 3})))
	})

	s.run(t, "WrongExpectedVersion", func(t *testing.T, store es.Store) {
		existing, _, _ := setUpStream(t, store, stateExisting)
		before := head(t, store)
		parts := []es.StreamAppend{
			{Stream: newStream("multi"), Expected: es.NoStream, Events: newEvents(1, "Multi")},
			{Stream: existing, Expected: es.Exact(7), Events: newEvents(1, "Multi")},
		}
		_, err := appendStreams(t, store, parts...)
		requireWrongVersion(t, err, existing, es.Exact(7), es.Exact(2))
		unwritten(t, store, before, parts)
	})

	s.run(t, "Tombstoned", func(t *testing.T, store es.Store) {
		dead, _, _ := setUpStream(t, store, stateTombstoned)
		before := head(t, store)
		parts := []es.StreamAppend{
			{Stream: newStream("multi"), Expected: es.Any, Events: newEvents(1, "Multi")},
			{Stream: dead, Expected: es.Any, Events: newEvents(1, "Multi")},
		}
		_, err := appendStreams(t, store, parts...)
		require.ErrorIs(t, err, es.ErrStreamDeleted, "a part to a tombstoned stream")
		unwritten(t, store, before, parts[:1])
	})

	s.run(t, "RecreatesSoftDeleted", func(t *testing.T, store es.Store) {
		deleted, _, _ := setUpStream(t, store, stateSoftDeleted)
		res, err := appendStreams(t, store,
			es.StreamAppend{Stream: deleted, Expected: es.NoStream, Events: newEvents(1, "Multi")},
			es.StreamAppend{Stream: newStream("multi"), Expected: es.NoStream, Events: newEvents(1, "Multi")})
		require.NoError(t, err, "AppendStreams to a soft-deleted stream")
		assert.Equal(t, uint64(3), res[0].Revision, "revisions continue after a soft delete")
		assert.Equal(t, []uint64{3}, revisions(readStream(t, store, deleted, es.ReadStreamOptions{})))
	})

	s.run(t, "Idempotent", func(t *testing.T, store es.Store) {
		before := head(t, store)
		parts := []es.StreamAppend{
			{Stream: newStream("multi"), Expected: es.NoStream, Events: newEvents(2, "Multi")},
			{Stream: newStream("multi"), Expected: es.NoStream, Events: newEvents(1, "Multi")},
		}
		first, err := appendStreams(t, store, parts...)
		require.NoError(t, err, "AppendStreams")
		again, err := appendStreams(t, store, parts...)
		require.NoError(t, err, "the same multi-stream append again")
		assert.Equal(t, first, again, "a repeated multi-stream append reports the original results")
		for _, p := range parts {
			assert.Len(t, readAllAfter(t, store, before, p.Stream), len(p.Events), "a repeated multi-stream append writes nothing")
		}
	})

	invalid := []struct {
		name  string
		parts func(stream string) []es.StreamAppend
		want  error
	}{
		{"NoParts", func(string) []es.StreamAppend { return nil }, es.ErrInvalidArgument},
		{"NoEvents", func(stream string) []es.StreamAppend {
			return []es.StreamAppend{{Stream: stream, Expected: es.Any, Events: newEvents(1, "Multi")}, {Stream: stream + "-b", Expected: es.Any}}
		}, es.ErrInvalidArgument},
		{"SameStreamTwice", func(stream string) []es.StreamAppend {
			return []es.StreamAppend{{Stream: stream, Expected: es.Any, Events: newEvents(1, "Multi")}, {Stream: stream, Expected: es.Any, Events: newEvents(1, "Multi")}}
		}, es.ErrInvalidArgument},
		{"EmptyType", func(stream string) []es.StreamAppend {
			evs := newEvents(1, "Multi")
			evs[0].Type = ""
			return []es.StreamAppend{{Stream: stream, Expected: es.Any, Events: newEvents(1, "Multi")}, {Stream: stream + "-b", Expected: es.Any, Events: evs}}
		}, es.ErrInvalidArgument},
		{"MaxAppendSize/Total", func(stream string) []es.StreamAppend {
			big := func() []es.EventData {
				evs := newEvents(1, "Big")
				evs[0].ContentType, evs[0].Data, evs[0].Metadata = es.ContentTypeBinary, bytes.Repeat([]byte{'x'}, es.MaxAppendSize/2+1), nil
				return evs
			}
			return []es.StreamAppend{{Stream: stream, Expected: es.Any, Events: big()}, {Stream: stream + "-b", Expected: es.Any, Events: big()}}
		}, es.ErrMaxAppendSizeExceeded},
	}
	for _, c := range invalid {
		s.run(t, "Invalid/"+c.name, func(t *testing.T, store es.Store) {
			stream := newStream("multi")
			before := head(t, store)
			parts := c.parts(stream)
			_, err := appendStreams(t, store, parts...)
			require.ErrorIs(t, err, c.want)
			unwritten(t, store, before, append(parts, es.StreamAppend{Stream: stream + "-b"}))
		})
	}

	s.run(t, "CancelledContext", func(t *testing.T, store es.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		before := head(t, store)
		parts := []es.StreamAppend{{Stream: newStream("multi"), Expected: es.Any, Events: newEvents(1, "Multi")}}
		_, err := appendStreamsCtx(ctx, t, store, parts...)
		require.ErrorIs(t, err, context.Canceled, "AppendStreams with a cancelled context")
		unwritten(t, store, before, parts)
	})
}

// readAllAfter reads the events of stream in `$all` after from (exclusive).
func readAllAfter(t *testing.T, store es.Store, from es.Position, stream string) []es.RecordedEvent {
	t.Helper()
	var out []es.RecordedEvent
	for _, ev := range readAllSince(t, store, from, stream) {
		if ev.Stream == stream && ev.Position.Compare(from) > 0 {
			out = append(out, ev)
		}
	}
	return out
}
