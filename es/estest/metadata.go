package estest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

func (s *suite) testStreamMetadata(t *testing.T) {
	// withMetadata appends five events to a new stream and sets m.
	withMetadata := func(t *testing.T, store es.Store, m es.StreamMetadata) string {
		t.Helper()
		stream := newStream("meta")
		appendOK(t, store, stream, es.NoStream, newEvents(5, "Meta")...)
		_, err := es.SetStreamMetadata(t.Context(), store, stream, es.NoStream, m)
		require.NoError(t, err, "SetStreamMetadata")
		return stream
	}

	s.run(t, "RoundTrip", func(t *testing.T, store es.Store) {
		stream := newStream("meta")
		got, rev, err := es.GetStreamMetadata(t.Context(), store, stream)
		require.NoError(t, err, "GetStreamMetadata of a stream without metadata")
		assert.Equal(t, es.StreamMetadata{}, got)
		assert.Equal(t, es.NoStream, rev, "expected revision of missing metadata")

		m := es.StreamMetadata{
			MaxCount:       7,
			MaxAge:         time.Hour,
			TruncateBefore: 2,
			Custom:         map[string]json.RawMessage{"tenant": json.RawMessage(`"acme"`)},
		}
		res, err := es.SetStreamMetadata(t.Context(), store, stream, es.NoStream, m)
		require.NoError(t, err, "SetStreamMetadata")
		assert.Equal(t, uint64(0), res.Revision, "revision of the first metadata event")
		got, rev, err = es.GetStreamMetadata(t.Context(), store, stream)
		require.NoError(t, err, "GetStreamMetadata")
		assert.Equal(t, es.Exact(0), rev, "revision of the metadata event")
		assert.Equal(t, m.MaxCount, got.MaxCount, "MaxCount")
		assert.Equal(t, m.MaxAge, got.MaxAge, "MaxAge")
		assert.Equal(t, m.TruncateBefore, got.TruncateBefore, "TruncateBefore")
		require.Contains(t, got.Custom, "tenant", "custom keys are kept")
		assert.JSONEq(t, `"acme"`, string(got.Custom["tenant"]))

		// Setting it again replaces it, with the expected revision of the
		// metadata stream.
		_, err = es.SetStreamMetadata(t.Context(), store, stream, es.NoStream, es.StreamMetadata{MaxCount: 1})
		requireWrongVersion(t, err, es.MetadataStream(stream), es.NoStream, es.Exact(0))
		_, err = es.SetStreamMetadata(t.Context(), store, stream, es.Exact(0), es.StreamMetadata{MaxCount: 1})
		require.NoError(t, err)
		got, rev, err = es.GetStreamMetadata(t.Context(), store, stream)
		require.NoError(t, err)
		assert.Equal(t, es.Exact(1), rev)
		assert.Equal(t, es.StreamMetadata{MaxCount: 1}, got, "new metadata replaces the old")
	})

	s.run(t, "MaxCount", func(t *testing.T, store es.Store) {
		stream := withMetadata(t, store, es.StreamMetadata{MaxCount: 2})
		assert.Equal(t, []uint64{3, 4}, revisions(readStream(t, store, stream, es.ReadStreamOptions{})), "forwards")
		assert.Equal(t, []uint64{4, 3}, revisions(readStream(t, store, stream, es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd})), "backwards")
		assert.Equal(t, []uint64{3}, revisions(readStream(t, store, stream, es.ReadStreamOptions{From: 1, Limit: 1})),
			"a read from a revision cut away starts at the first event kept")
		appendOK(t, store, stream, es.Exact(4), newEvents(1, "Meta")...)
		assert.Equal(t, []uint64{4, 5}, revisions(readStream(t, store, stream, es.ReadStreamOptions{})), "after another append")
	})

	s.run(t, "TruncateBefore", func(t *testing.T, store es.Store) {
		stream := withMetadata(t, store, es.StreamMetadata{TruncateBefore: 3})
		assert.Equal(t, []uint64{3, 4}, revisions(readStream(t, store, stream, es.ReadStreamOptions{})), "forwards")
		assert.Equal(t, []uint64{4, 3}, revisions(readStream(t, store, stream, es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd})), "backwards")
		assert.Equal(t, []uint64{3}, revisions(readStream(t, store, stream, es.ReadStreamOptions{Direction: es.Backwards, From: 3})), "backwards from the first kept")
	})

	s.run(t, "MaxCountAndTruncateBefore", func(t *testing.T, store es.Store) {
		stream := withMetadata(t, store, es.StreamMetadata{MaxCount: 4, TruncateBefore: 2})
		assert.Equal(t, []uint64{2, 3, 4}, revisions(readStream(t, store, stream, es.ReadStreamOptions{})))
	})

	s.run(t, "MaxAge", func(t *testing.T, store es.Store) {
		// Without waiting, only an age that keeps everything can be checked.
		stream := withMetadata(t, store, es.StreamMetadata{MaxAge: time.Hour})
		assert.Equal(t, []uint64{0, 1, 2, 3, 4}, revisions(readStream(t, store, stream, es.ReadStreamOptions{})))
	})

	s.run(t, "EverythingCutAway", func(t *testing.T, store es.Store) {
		stream := withMetadata(t, store, es.StreamMetadata{TruncateBefore: 10})
		for _, opts := range []es.ReadStreamOptions{{}, {Direction: es.Backwards, From: es.StreamEnd}} {
			evs, err := collect(t, store.ReadStream(t.Context(), stream, opts))
			require.NoError(t, err, "a stream whose events are all cut away is empty, not missing")
			assert.Empty(t, evs)
		}
	})

	s.run(t, "MetadataStreamKeepsNewest", func(t *testing.T, store es.Store) {
		stream := newStream("meta")
		for i := range 3 {
			_, err := es.SetStreamMetadata(t.Context(), store, stream, es.Any, es.StreamMetadata{MaxCount: uint64(i + 1)})
			require.NoError(t, err)
		}
		for _, opts := range []es.ReadStreamOptions{{}, {Direction: es.Backwards, From: es.StreamEnd}} {
			evs := readStream(t, store, es.MetadataStream(stream), opts)
			require.Len(t, evs, 1, "a metadata stream keeps only its newest event")
			assert.Equal(t, uint64(2), evs[0].Revision)
			assert.Equal(t, es.EventTypeMetadata, evs[0].Type)
			var m es.StreamMetadata
			require.NoError(t, json.Unmarshal(evs[0].Data, &m))
			assert.Equal(t, uint64(3), m.MaxCount)
		}
	})
}
