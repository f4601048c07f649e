package estest

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

// clockSkew is how far the Created time of an event may be from the test's
// clock: a remote server's clock may differ a little.
const clockSkew = time.Minute

func (s *suite) testReadStream(t *testing.T) {
	// fiveEvents appends five events to a new stream.
	fiveEvents := func(t *testing.T, store es.Store) string {
		t.Helper()
		stream := newStream("read")
		appendOK(t, store, stream, es.NoStream, newEvents(5, "Read")...)
		return stream
	}
	cases := []struct {
		name string
		opts es.ReadStreamOptions
		want []uint64
	}{
		{"Forwards", es.ReadStreamOptions{}, []uint64{0, 1, 2, 3, 4}},
		{"Forwards/From", es.ReadStreamOptions{From: 2}, []uint64{2, 3, 4}},
		{"Forwards/FromLast", es.ReadStreamOptions{From: 4}, []uint64{4}},
		{"Forwards/FromBeyondEnd", es.ReadStreamOptions{From: 5}, nil},
		{"Forwards/FromFarBeyondEnd", es.ReadStreamOptions{From: 1000}, nil},
		{"Forwards/Limit", es.ReadStreamOptions{Limit: 2}, []uint64{0, 1}},
		{"Forwards/FromAndLimit", es.ReadStreamOptions{From: 1, Limit: 3}, []uint64{1, 2, 3}},
		{"Forwards/LimitOverLength", es.ReadStreamOptions{From: 3, Limit: 10}, []uint64{3, 4}},
		{"Forwards/LimitZeroIsNoLimit", es.ReadStreamOptions{Limit: 0}, []uint64{0, 1, 2, 3, 4}},
		{"Backwards/FromStreamEnd", es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd}, []uint64{4, 3, 2, 1, 0}},
		{"Backwards/From", es.ReadStreamOptions{Direction: es.Backwards, From: 2}, []uint64{2, 1, 0}},
		{"Backwards/FromZero", es.ReadStreamOptions{Direction: es.Backwards, From: 0}, []uint64{0}},
		{"Backwards/Limit", es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd, Limit: 2}, []uint64{4, 3}},
		{"Backwards/FromAndLimit", es.ReadStreamOptions{Direction: es.Backwards, From: 3, Limit: 2}, []uint64{3, 2}},
	}
	for _, c := range cases {
		s.run(t, c.name, func(t *testing.T, store es.Store) {
			stream := fiveEvents(t, store)
			got := readStream(t, store, stream, c.opts)
			require.Equalf(t, c.want, revisions(got), "revisions read with %+v", c.opts)
		})
	}

	for _, dir := range []es.Direction{es.Forwards, es.Backwards} {
		s.run(t, "NotFound/"+[...]string{"Forwards", "Backwards"}[dir], func(t *testing.T, store es.Store) {
			opts := es.ReadStreamOptions{Direction: dir}
			if dir == es.Backwards {
				opts.From = es.StreamEnd
			}
			err := readStreamErr(t, store, newStream("missing"), opts)
			require.ErrorIs(t, err, es.ErrStreamNotFound, "reading a stream that does not exist")
		})
	}

	s.run(t, "NotFound/MetadataOnly", func(t *testing.T, store es.Store) {
		stream := newStream("read")
		_, err := es.SetStreamMetadata(t.Context(), store, stream, es.NoStream, es.StreamMetadata{MaxCount: 3})
		require.NoError(t, err, "SetStreamMetadata")
		err = readStreamErr(t, store, stream, es.ReadStreamOptions{})
		require.ErrorIs(t, err, es.ErrStreamNotFound, "reading a stream that has metadata and no events")
	})

	s.run(t, "RoundTrip", func(t *testing.T, store es.Store) {
		stream := newStream("read")
		evs := []es.EventData{
			{ID: uuid.New(), Type: "JSONEvent", ContentType: es.ContentTypeJSON,
				Data: []byte(`{"amount":42,"currency":"EUR"}`), Metadata: []byte(`{"$correlationId":"c-1","tenant":"acme"}`)},
			{ID: uuid.New(), Type: "BinaryEvent", ContentType: es.ContentTypeBinary,
				Data: []byte{0, 1, 2, 0xfe, 0xff, '\n'}},
			{ID: uuid.New(), Type: "EmptyEvent", ContentType: es.ContentTypeJSON,
				Metadata: []byte(`{}`)},
			{ID: uuid.New(), Type: "Ünïcode-Ëvent ✓", ContentType: es.ContentTypeJSON,
				Data: []byte(`{"text":"grüße, 世界"}`)},
		}
		before := time.Now()
		res := appendOK(t, store, stream, es.NoStream, evs...)
		after := time.Now()

		got := readStream(t, store, stream, es.ReadStreamOptions{})
		require.Len(t, got, len(evs))
		for i, ev := range got {
			requireSameEvent(t, evs[i], stream, ev)
			assert.Equal(t, uint64(i), ev.Revision, "Revision")
			assert.False(t, ev.Position.IsZero(), "Position must be after Start")
			assert.Falsef(t, ev.Created.Before(before.Add(-clockSkew)) || ev.Created.After(after.Add(clockSkew)),
				"Created %v must be close to the time of the append, between %v and %v", ev.Created, before, after)
		}
		requireIncreasing(t, got)
		assert.Equal(t, res.Position, got[len(got)-1].Position, "Position of the last event")

		all := readAllSince(t, store, got[0].Position, stream)
		require.Len(t, all, len(evs), "the events in $all")
		for i := range all {
			assert.Equal(t, got[i].Position, all[i].Position, "ReadStream and ReadAll report the same position")
			assert.Equal(t, got[i].Revision, all[i].Revision, "ReadStream and ReadAll report the same revision")
			assert.True(t, got[i].Created.Equal(all[i].Created), "ReadStream and ReadAll report the same created time")
			requireSameEvent(t, evs[i], stream, all[i])
		}
	})

	s.run(t, "ReturnsCopies", func(t *testing.T, store es.Store) {
		stream := newStream("read")
		ev := newEvents(1, "Copied")
		data := string(ev[0].Data)
		appendOK(t, store, stream, es.NoStream, ev...)
		ev[0].Data[0] = 'X' // the caller may reuse its buffers
		got := readStream(t, store, stream, es.ReadStreamOptions{})
		require.Len(t, got, 1)
		assert.Equal(t, data, string(got[0].Data), "a store keeps its own copy of appended data")
		got[0].Data[0] = 'Y'
		again := readStream(t, store, stream, es.ReadStreamOptions{})
		assert.Equal(t, data, string(again[0].Data), "a reader must not be able to change stored data")
	})

	s.run(t, "BreakEarly", func(t *testing.T, store es.Store) {
		stream := fiveEvents(t, store)
		n := 0
		for _, err := range store.ReadStream(t.Context(), stream, es.ReadStreamOptions{}) {
			require.NoError(t, err)
			if n++; n == 2 {
				break
			}
		}
		require.Equal(t, 2, n)
		// The store is still usable: the iterator released what it held.
		appendOK(t, store, stream, es.Exact(4), newEvents(1, "AfterBreak")...)
		assert.Len(t, readStream(t, store, stream, es.ReadStreamOptions{}), 6)
	})

	s.run(t, "CancelledContext/BeforeRead", func(t *testing.T, store es.Store) {
		stream := fiveEvents(t, store)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		evs, err := collect(t, store.ReadStream(ctx, stream, es.ReadStreamOptions{}))
		require.Errorf(t, err, "a read with a cancelled context read %d events and ended without an error", len(evs))
		require.ErrorIs(t, err, context.Canceled)
	})

	s.run(t, "CancelledContext/BeforeEmptyRead", func(t *testing.T, store es.Store) {
		stream := newStream("read")
		appendOK(t, store, stream, es.NoStream, newEvents(2, "Read")...)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		got, err := collect(t, store.ReadStream(ctx, stream, es.ReadStreamOptions{From: 2}))
		require.Errorf(t, err, "a read with a cancelled context read %d events and ended without an error", len(got))
		require.ErrorIs(t, err, context.Canceled)
	})

	s.run(t, "CancelledContext/DuringRead", func(t *testing.T, store es.Store) {
		stream := newStream("read")
		appendOK(t, store, stream, es.NoStream, newEvents(50, "Read")...)
		testCancelDuringRead(t, 50, func(ctx context.Context) iter.Seq2[es.RecordedEvent, error] {
			return store.ReadStream(ctx, stream, es.ReadStreamOptions{})
		})
	})
}

// testCancelDuringRead cancels a read of n events after its first event: the
// read must end with the context's error, unless it had already read all n.
func testCancelDuringRead(t *testing.T, n int, read func(ctx context.Context) iter.Seq2[es.RecordedEvent, error]) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		count int
		last  error
	)
	for _, err := range read(ctx) {
		require.NoErrorf(t, last, "a value after the error %v", last)
		if err != nil {
			last = err
			continue
		}
		if count++; count == 1 {
			cancel()
		}
	}
	if last == nil {
		require.GreaterOrEqualf(t, count, n, "a read cancelled after its first event read %d events and ended without an error", count)
		return
	}
	require.ErrorIs(t, last, context.Canceled, "a read cancelled after its first event")
}

func (s *suite) testReadAll(t *testing.T) {
	// threeEvents appends three events to a new stream and reads them back.
	threeEvents := func(t *testing.T, store es.Store) (string, []es.RecordedEvent) {
		t.Helper()
		stream := newStream("readall")
		appendOK(t, store, stream, es.NoStream, newEvents(3, "ReadAll")...)
		return stream, readStream(t, store, stream, es.ReadStreamOptions{})
	}

	s.run(t, "Forwards/FromPositionIsInclusive", func(t *testing.T, store es.Store) {
		_, evs := threeEvents(t, store)
		got, err := collect(t, store.ReadAll(t.Context(), es.ReadAllOptions{From: evs[1].Position, Limit: 1}))
		require.NoError(t, err)
		require.Len(t, got, 1, "ReadAll with Limit 1")
		assert.Equal(t, evs[1].ID, got[0].ID, "reading $all forwards from an event's position starts with that event")
		assert.Equal(t, evs[1].Position, got[0].Position)
	})

	s.run(t, "Forwards/Order", func(t *testing.T, store es.Store) {
		stream, evs := threeEvents(t, store)
		got := readAllSince(t, store, evs[0].Position, stream)
		require.Equal(t, recordedIDs(evs), recordedIDs(got), "the stream's events in $all, in order")
		all, err := collect(t, store.ReadAll(t.Context(), es.ReadAllOptions{From: evs[0].Position, Limit: 100}))
		require.NoError(t, err)
		requireIncreasing(t, all)
	})

	s.run(t, "Forwards/Limit", func(t *testing.T, store es.Store) {
		_, evs := threeEvents(t, store)
		got, err := collect(t, store.ReadAll(t.Context(), es.ReadAllOptions{From: evs[0].Position, Limit: 2}))
		require.NoError(t, err)
		require.Len(t, got, 2, "ReadAll with Limit 2")
		assert.Equal(t, evs[0].ID, got[0].ID)
		requireIncreasing(t, got)
	})

	s.run(t, "Forwards/FromStart", func(t *testing.T, store es.Store) {
		_, evs := threeEvents(t, store)
		got, err := collect(t, store.ReadAll(t.Context(), es.ReadAllOptions{From: es.Start, Limit: 1}))
		require.NoError(t, err)
		require.Len(t, got, 1, "ReadAll forwards from Start with Limit 1 on a store that has events")
		assert.False(t, got[0].Position.IsZero(), "positions are after Start")
		assert.LessOrEqual(t, got[0].Position.Compare(evs[0].Position), 0, "the first event of $all is not after one written later")
	})

	s.run(t, "Forwards/FromEnd", func(t *testing.T, store es.Store) {
		stream, _ := threeEvents(t, store)
		got, err := collect(t, store.ReadAll(t.Context(), es.ReadAllOptions{From: es.End, Limit: 100}))
		require.NoError(t, err)
		for _, ev := range got {
			assert.NotEqual(t, stream, ev.Stream, "reading forwards from End reads no event written before")
		}
	})

	s.run(t, "Backwards/FromPositionIsExclusive", func(t *testing.T, store es.Store) {
		stream, evs := threeEvents(t, store)
		got, err := collect(t, store.ReadAll(t.Context(), es.ReadAllOptions{Direction: es.Backwards, From: evs[2].Position, Limit: 1}))
		require.NoError(t, err)
		require.Len(t, got, 1, "ReadAll backwards with Limit 1")
		assert.Equal(t, -1, got[0].Position.Compare(evs[2].Position), "reading $all backwards from a position reads only events before it")

		// The stream's events before evs[2], newest first; other streams'
		// events may come in between.
		var mine []es.RecordedEvent
		n := 0
		for ev, err := range store.ReadAll(t.Context(), es.ReadAllOptions{Direction: es.Backwards, From: evs[2].Position, Limit: 10000}) {
			require.NoError(t, err)
			require.Equalf(t, -1, ev.Position.Compare(evs[2].Position), "event %d read backwards from %v is at %v", n, evs[2].Position, ev.Position)
			n++
			if ev.Stream == stream {
				if mine = append(mine, ev); len(mine) == 2 {
					break
				}
			}
		}
		assert.Equal(t, []uint64{1, 0}, revisions(mine), "the stream's events read backwards from the position of its third")
	})

	s.run(t, "Backwards/FromEnd", func(t *testing.T, store es.Store) {
		_, evs := threeEvents(t, store)
		got, err := collect(t, store.ReadAll(t.Context(), es.ReadAllOptions{Direction: es.Backwards, From: es.End, Limit: 3}))
		require.NoError(t, err)
		require.Len(t, got, 3, "ReadAll backwards from End with Limit 3")
		assert.GreaterOrEqual(t, got[0].Position.Compare(evs[2].Position), 0, "the newest event of $all is not before one written earlier")
		for i := 1; i < len(got); i++ {
			assert.Equal(t, 1, got[i-1].Position.Compare(got[i].Position), "positions decrease when reading backwards")
		}
	})

	s.run(t, "Backwards/FromStart", func(t *testing.T, store es.Store) {
		threeEvents(t, store)
		got, err := collect(t, store.ReadAll(t.Context(), es.ReadAllOptions{Direction: es.Backwards, From: es.Start, Limit: 10}))
		require.NoError(t, err)
		assert.Empty(t, got, "nothing is before Start")
	})

	s.run(t, "SystemEvents", func(t *testing.T, store es.Store) {
		stream := newStream("readall")
		before := head(t, store)
		appendOK(t, store, stream, es.NoStream, newEvents(1, "User")...)
		_, err := es.SetStreamMetadata(t.Context(), store, stream, es.Any, es.StreamMetadata{MaxCount: 5})
		require.NoError(t, err)
		var types []string
		for _, ev := range readAllSince(t, store, before, "") {
			if ev.Stream == stream || ev.Stream == es.MetadataStream(stream) {
				types = append(types, ev.Type)
			}
		}
		assert.Equal(t, []string{"User", es.EventTypeMetadata}, types, "$all holds metadata streams' events too")
	})

	s.run(t, "BreakEarly", func(t *testing.T, store es.Store) {
		stream, evs := threeEvents(t, store)
		n := 0
		for _, err := range store.ReadAll(t.Context(), es.ReadAllOptions{From: evs[0].Position}) {
			require.NoError(t, err)
			if n++; n == 2 {
				break
			}
		}
		require.Equal(t, 2, n)
		appendOK(t, store, stream, es.Exact(2), newEvents(1, "AfterBreak")...)
	})

	s.run(t, "CancelledContext/BeforeRead", func(t *testing.T, store es.Store) {
		_, evs := threeEvents(t, store)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		got, err := collect(t, store.ReadAll(ctx, es.ReadAllOptions{From: evs[0].Position}))
		require.Errorf(t, err, "a read with a cancelled context read %d events and ended without an error", len(got))
		require.ErrorIs(t, err, context.Canceled)
	})

	s.run(t, "CancelledContext/BeforeEmptyRead", func(t *testing.T, store es.Store) {
		// Even a read with nothing to read reports the cancellation: it
		// must not look like the end of the log.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		got, err := collect(t, store.ReadAll(ctx, es.ReadAllOptions{From: es.End}))
		require.Errorf(t, err, "a read with a cancelled context read %d events and ended without an error", len(got))
		require.ErrorIs(t, err, context.Canceled)
	})

	s.run(t, "CancelledContext/DuringRead", func(t *testing.T, store es.Store) {
		stream := newStream("readall")
		appendOK(t, store, stream, es.NoStream, newEvents(50, "ReadAll")...)
		evs := readStream(t, store, stream, es.ReadStreamOptions{Limit: 1})
		testCancelDuringRead(t, 50, func(ctx context.Context) iter.Seq2[es.RecordedEvent, error] {
			return store.ReadAll(ctx, es.ReadAllOptions{From: evs[0].Position, Limit: 50})
		})
	})
}
