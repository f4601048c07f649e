package estest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// deleteFunc is DeleteStream or TombstoneStream.
type deleteFunc func(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error)

func (s *suite) testDelete(t *testing.T) {
	s.run(t, "ReadNotFound", func(t *testing.T, store es.Store) {
		stream, _, pos := setUpStream(t, store, stateExisting)
		res, err := store.DeleteStream(t.Context(), stream, es.Any)
		require.NoError(t, err, "DeleteStream")
		assert.Equal(t, 1, res.Position.Compare(pos), "the delete's position %v must be after the stream's last event %v", res.Position, pos)
		require.ErrorIs(t, readStreamErr(t, store, stream, es.ReadStreamOptions{}), es.ErrStreamNotFound, "reading a soft-deleted stream forwards")
		require.ErrorIs(t, readStreamErr(t, store, stream, es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd}),
			es.ErrStreamNotFound, "reading a soft-deleted stream backwards")
	})

	for _, expected := range []es.ExpectedRevision{es.Any, es.NoStream, es.StreamExists, es.Exact(0)} {
		s.run(t, "NeverExisted/"+expectedName(expected), func(t *testing.T, store es.Store) {
			stream := newStream("delete")
			_, err := store.DeleteStream(t.Context(), stream, expected)
			requireWrongVersion(t, err, stream, expected, es.NoStream)
		})
	}

	t.Run("ExpectedRevision", func(t *testing.T) {
		s.testDeleteExpected(t, func(store es.Store) deleteFunc { return store.DeleteStream })
	})

	s.run(t, "WritesMetadata", func(t *testing.T, store es.Store) {
		stream, _, _ := setUpStream(t, store, stateExisting)
		_, err := es.SetStreamMetadata(t.Context(), store, stream, es.NoStream, es.StreamMetadata{MaxCount: 10})
		require.NoError(t, err)
		before := head(t, store)
		res, err := store.DeleteStream(t.Context(), stream, es.Exact(2))
		require.NoError(t, err)
		m, _, err := es.GetStreamMetadata(t.Context(), store, stream)
		require.NoError(t, err, "GetStreamMetadata of a soft-deleted stream")
		assert.True(t, esdriver.IsDeleted(m), "a soft delete sets $tb to %d, got metadata %+v", esdriver.DeletedTruncateBefore, m)
		assert.Equal(t, es.StreamMetadata{TruncateBefore: esdriver.DeletedTruncateBefore}, m, "a soft delete replaces the earlier metadata")
		var found bool
		for _, ev := range readAllSince(t, store, before, es.MetadataStream(stream)) {
			if ev.Stream == es.MetadataStream(stream) && ev.Position == res.Position {
				found = true
				assert.Equal(t, es.EventTypeMetadata, ev.Type, "the record a soft delete writes")
			}
		}
		assert.True(t, found, "the delete's position %v is that of a %s event of %s in $all", res.Position, es.EventTypeMetadata, es.MetadataStream(stream))
	})

	s.run(t, "EventsStayInAll", func(t *testing.T, store es.Store) {
		before := head(t, store)
		stream, _, _ := setUpStream(t, store, stateSoftDeleted)
		assert.Equal(t, []uint64{0, 1, 2}, revisions(readAllSince(t, store, before, stream)), "a soft-deleted stream's events stay in $all")
	})

	s.run(t, "Recreate", func(t *testing.T, store es.Store) {
		before := head(t, store)
		stream, _, _ := setUpStream(t, store, stateSoftDeleted)
		evs := newEvents(2, "Recreated")
		res := appendOK(t, store, stream, es.Any, evs...)
		assert.Equal(t, uint64(4), res.Revision, "numbering continues from the old last revision")
		got := readStream(t, store, stream, es.ReadStreamOptions{})
		require.Equal(t, []uint64{3, 4}, revisions(got), "a recreated stream shows only its new events")
		requireSameEvent(t, evs[0], stream, got[0])
		assert.Equal(t, []uint64{4, 3}, revisions(readStream(t, store, stream, es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd})))
		assert.Equal(t, []uint64{3}, revisions(readStream(t, store, stream, es.ReadStreamOptions{From: 0, Limit: 1})), "reading from revision 0 starts at the first new event")
		assert.Equal(t, []uint64{0, 1, 2, 3, 4}, revisions(readAllSince(t, store, before, stream)), "$all holds the old and the new events")

		// The recreated stream can be deleted and recreated again.
		_, err := store.DeleteStream(t.Context(), stream, es.Exact(4))
		require.NoError(t, err, "deleting a recreated stream")
		require.ErrorIs(t, readStreamErr(t, store, stream, es.ReadStreamOptions{}), es.ErrStreamNotFound)
		res = appendOK(t, store, stream, es.NoStream, newEvents(1, "Again")...)
		assert.Equal(t, uint64(5), res.Revision)
		assert.Equal(t, []uint64{5}, revisions(readStream(t, store, stream, es.ReadStreamOptions{})))
	})

	s.run(t, "Recreate/StreamExists", func(t *testing.T, store es.Store) {
		stream, _, _ := setUpStream(t, store, stateSoftDeleted)
		_, err := store.Append(t.Context(), stream, es.StreamExists, newEvents(1, "Recreated")...)
		require.ErrorIs(t, err, es.ErrStreamDeleted, "StreamExists on a soft-deleted stream")
		require.ErrorIs(t, readStreamErr(t, store, stream, es.ReadStreamOptions{}), es.ErrStreamNotFound, "the failed append wrote nothing")
	})

	s.run(t, "Recreate/NoStream", func(t *testing.T, store es.Store) {
		stream, _, _ := setUpStream(t, store, stateSoftDeleted)
		res := appendOK(t, store, stream, es.NoStream, newEvents(1, "Recreated")...)
		assert.Equal(t, uint64(3), res.Revision)
		assert.Equal(t, []uint64{3}, revisions(readStream(t, store, stream, es.ReadStreamOptions{})))
	})
}

// testDeleteExpected checks the expected-revision check of a delete of an
// existing stream whose last revision is 2.
func (s *suite) testDeleteExpected(t *testing.T, del func(es.Store) deleteFunc) {
	cases := []struct {
		name     string
		expected es.ExpectedRevision
		ok       bool
	}{
		{"Any", es.Any, true},
		{"NoStream", es.NoStream, false},
		{"StreamExists", es.StreamExists, true},
		{"ExactLast", es.Exact(2), true},
		{"ExactLastMinus1", es.Exact(1), false},
		{"ExactLastPlus1", es.Exact(3), false},
	}
	for _, c := range cases {
		s.run(t, c.name, func(t *testing.T, store es.Store) {
			stream, _, pos := setUpStream(t, store, stateExisting)
			res, err := del(store)(t.Context(), stream, c.expected)
			if !c.ok {
				requireWrongVersion(t, err, stream, c.expected, es.Exact(2))
				assert.Len(t, readStream(t, store, stream, es.ReadStreamOptions{}), 3, "a failed delete deletes nothing")
				return
			}
			require.NoErrorf(t, err, "delete with expected revision %v", c.expected)
			assert.Equal(t, 1, res.Position.Compare(pos), "the delete's position %v must be after the stream's last event %v", res.Position, pos)
			require.Error(t, readStreamErr(t, store, stream, es.ReadStreamOptions{}), "reading a deleted stream")
		})
	}
}

func (s *suite) testTombstone(t *testing.T) {
	s.run(t, "Missing", func(t *testing.T, store es.Store) {
		stream := newStream("tombstone")
		before := head(t, store)
		res, err := store.TombstoneStream(t.Context(), stream, es.Any)
		require.NoError(t, err, "tombstoning a stream that does not exist")
		assert.Equal(t, 1, res.Position.Compare(before), "the tombstone's position %v must be after the head %v", res.Position, before)
		require.ErrorIs(t, readStreamErr(t, store, stream, es.ReadStreamOptions{}), es.ErrStreamDeleted)
	})

	t.Run("ExpectedRevision", func(t *testing.T) {
		s.testDeleteExpected(t, func(store es.Store) deleteFunc { return store.TombstoneStream })
	})

	s.run(t, "SoftDeleted", func(t *testing.T, store es.Store) {
		stream, _, _ := setUpStream(t, store, stateSoftDeleted)
		_, err := store.TombstoneStream(t.Context(), stream, es.Any)
		require.NoError(t, err, "tombstoning a soft-deleted stream")
		require.ErrorIs(t, readStreamErr(t, store, stream, es.ReadStreamOptions{}), es.ErrStreamDeleted)
	})

	s.run(t, "RecordInAll", func(t *testing.T, store es.Store) {
		before := head(t, store)
		stream := newStream("tombstone")
		appendOK(t, store, stream, es.NoStream, newEvents(2, "Tombstoned")...)
		res, err := store.TombstoneStream(t.Context(), stream, es.Exact(1))
		require.NoError(t, err)
		evs := readAllSince(t, store, before, stream)
		require.Len(t, evs, 3, "the stream's events and its tombstone in $all")
		assert.Equal(t, []uint64{0, 1}, revisions(evs[:2]), "a tombstoned stream's events stay in $all")
		tomb := evs[2]
		assert.Equal(t, es.EventTypeStreamDeleted, tomb.Type, "type of the tombstone record")
		assert.Equal(t, esdriver.TombstoneRevision, tomb.Revision, "revision of the tombstone record")
		assert.Equal(t, res.Position, tomb.Position, "the tombstone's position is the one TombstoneStream reports")
		assert.True(t, tomb.IsSystem())
	})

	// Every operation on a tombstoned stream fails with ErrStreamDeleted.
	afterwards := []struct {
		name string
		op   func(t *testing.T, store es.Store, stream string) error
	}{
		{"ReadStream/Forwards", func(t *testing.T, store es.Store, stream string) error {
			return readStreamErr(t, store, stream, es.ReadStreamOptions{})
		}},
		{"ReadStream/Backwards", func(t *testing.T, store es.Store, stream string) error {
			return readStreamErr(t, store, stream, es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd})
		}},
		{"Append/Empty", func(t *testing.T, store es.Store, stream string) error {
			_, err := store.Append(t.Context(), stream, es.Any)
			return err
		}},
		{"DeleteStream", func(t *testing.T, store es.Store, stream string) error {
			_, err := store.DeleteStream(t.Context(), stream, es.Any)
			return err
		}},
		{"TombstoneStream", func(t *testing.T, store es.Store, stream string) error {
			_, err := store.TombstoneStream(t.Context(), stream, es.Any)
			return err
		}},
		{"SubscribeStream", func(t *testing.T, store es.Store, stream string) error {
			ctx, cancel := context.WithTimeout(t.Context(), s.timeout)
			defer cancel()
			for msg, err := range store.SubscribeStream(ctx, stream, es.SubscribeStreamOptions{}) {
				require.Errorf(t, err, "the first value of a subscription to a tombstoned stream must be an error, got %v message", msg.Kind)
				return err
			}
			t.Fatal("the subscription to a tombstoned stream ended without an error")
			return nil
		}},
	}
	for _, expected := range []es.ExpectedRevision{es.Any, es.NoStream, es.StreamExists, es.Exact(0), es.Exact(2), es.Exact(3)} {
		afterwards = append(afterwards, struct {
			name string
			op   func(t *testing.T, store es.Store, stream string) error
		}{"Append/" + expectedName(expected), func(t *testing.T, store es.Store, stream string) error {
			_, err := store.Append(t.Context(), stream, expected, newEvents(1, "AfterTombstone")...)
			return err
		}})
	}
	for _, a := range afterwards {
		s.run(t, "Afterwards/"+a.name, func(t *testing.T, store es.Store) {
			stream, _, _ := setUpStream(t, store, stateTombstoned)
			require.ErrorIs(t, a.op(t, store, stream), es.ErrStreamDeleted, "%s on a tombstoned stream", a.name)
			// Tombstoning a missing stream is as final.
			missing := newStream("tombstone")
			_, err := store.TombstoneStream(t.Context(), missing, es.NoStream)
			require.NoError(t, err)
			require.ErrorIs(t, a.op(t, store, missing), es.ErrStreamDeleted, "%s on a tombstoned stream that never had events", a.name)
		})
	}
}
