package esdbtest_test

import (
	"math"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

func TestSoftDeleteAndRecreate(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(3)...)
	var meta esdb.StreamMetadata
	meta.SetMaxCount(50)
	_, err := c.SetStreamMetadata(t.Context(), "s", esdb.AppendToStreamOptions{}, meta)
	require.NoError(t, err)

	_, err = c.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{ExpectedRevision: esdb.Revision(1)})
	require.Error(t, err, "wrong expected revision")
	assert.Contains(t, err.Error(), "WrongExpectedVersion")

	res, err := c.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{ExpectedRevision: esdb.Revision(2)})
	require.NoError(t, err)
	assert.Positive(t, res.Position.Commit)
	assert.Equal(t, res.Position.Commit, res.Position.Prepare)

	_, err = readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
	got, err := readStream(t, c, "$$s", esdb.ReadStreamOptions{}, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.JSONEq(t, `{"$tb":9223372036854775807}`, string(got[0].Data), "the delete replaces earlier metadata")

	_, err = c.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.StreamExists{}}, event("Tested"))
	assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err))

	// Recreate: numbering continues, old events stay hidden.
	res2 := appendEvents(t, c, "s", esdb.NoStream{}, events(2)...)
	assert.Equal(t, uint64(4), res2.NextExpectedVersion)
	got, err = readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{3, 4}, revisions(got))
	got, err = readStream(t, c, "s", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{4, 3}, revisions(got))
	m, err := c.GetStreamMetadata(t.Context(), "s", esdb.ReadStreamOptions{})
	require.NoError(t, err)
	require.NotNil(t, m.TruncateBefore())
	assert.Equal(t, uint64(3), *m.TruncateBefore())

	// $all keeps everything: 3 + metadata + delete + 2 + recreate metadata.
	assert.Len(t, readAll(t, c, esdb.ReadAllOptions{}, 100), 8)
	assert.Len(t, srv.Events("s"), 5)
}

func TestSoftDeleteExpectations(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)

	for _, exp := range []esdb.ExpectedRevision{esdb.Any{}, esdb.NoStream{}, esdb.StreamExists{}, esdb.Revision(0)} {
		_, err := c.DeleteStream(t.Context(), "never", esdb.DeleteStreamOptions{ExpectedRevision: exp})
		require.Error(t, err, "deleting a stream that never existed fails with %T", exp)
		assert.Contains(t, err.Error(), "WrongExpectedVersion")
	}

	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)
	_, err := c.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{ExpectedRevision: esdb.NoStream{}})
	assert.Contains(t, err.Error(), "WrongExpectedVersion")
	_, err = c.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{ExpectedRevision: esdb.StreamExists{}})
	require.NoError(t, err)
	_, err = c.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{ExpectedRevision: esdb.StreamExists{}})
	assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err))
	_, err = c.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{ExpectedRevision: esdb.Any{}})
	require.NoError(t, err, "deleting a soft-deleted stream again")
}

func TestTombstone(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(2)...)

	_, err := c.TombstoneStream(t.Context(), "s", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Revision(0)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "WrongExpectedVersion")

	res, err := c.TombstoneStream(t.Context(), "s", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Revision(1)})
	require.NoError(t, err)
	assert.Positive(t, res.Position.Commit)
	assert.True(t, srv.Tombstoned("s"))

	_, err = readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err))
	assert.Contains(t, err.Error(), "stream 's' is deleted")
	_, err = readStream(t, c, "s", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 10)
	assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err))
	for _, exp := range []esdb.ExpectedRevision{esdb.Any{}, esdb.NoStream{}, esdb.StreamExists{}, esdb.Revision(1)} {
		_, err = c.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{ExpectedRevision: exp}, event("Tested"))
		assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err))
	}
	_, err = c.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{ExpectedRevision: esdb.Any{}})
	assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err))
	_, err = c.TombstoneStream(t.Context(), "s", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Any{}})
	assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err))
	_, err = c.SubscribeToStream(t.Context(), "s", esdb.SubscribeToStreamOptions{From: esdb.Start{}})
	assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err))

	all := readAll(t, c, esdb.ReadAllOptions{}, 100)
	require.Len(t, all, 3)
	assert.Equal(t, "$streamDeleted", all[2].EventType)
	assert.Equal(t, "s", all[2].StreamID)
	assert.Equal(t, uint64(math.MaxInt64), all[2].EventNumber)
	assert.Equal(t, res.Position, all[2].Position)
}

func TestTombstoneMissingStream(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	_, err := c.TombstoneStream(t.Context(), "never", esdb.TombstoneStreamOptions{})
	require.NoError(t, err)
	_, err = readStream(t, c, "never", esdb.ReadStreamOptions{}, 1)
	assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err))

	_, err = c.TombstoneStream(t.Context(), "never2", esdb.TombstoneStreamOptions{ExpectedRevision: esdb.StreamExists{}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "WrongExpectedVersion")
}

func TestSoftDeletedStreamUndeletedByMetadataOrEmptyWrite(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)

	// New metadata on a soft-deleted stream undeletes it; the old events
	// stay hidden.
	appendEvents(t, c, "a", esdb.NoStream{}, events(3)...)
	_, err := c.DeleteStream(t.Context(), "a", esdb.DeleteStreamOptions{})
	require.NoError(t, err)
	var meta esdb.StreamMetadata
	meta.SetMaxCount(10)
	_, err = c.SetStreamMetadata(t.Context(), "a", esdb.AppendToStreamOptions{}, meta)
	require.NoError(t, err)
	got, err := readStream(t, c, "a", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err, "the stream exists again")
	assert.Empty(t, got)
	m, err := c.GetStreamMetadata(t.Context(), "a", esdb.ReadStreamOptions{})
	require.NoError(t, err)
	require.NotNil(t, m.TruncateBefore())
	assert.Equal(t, uint64(3), *m.TruncateBefore())
	require.NotNil(t, m.MaxCount())
	assert.Equal(t, uint64(10), *m.MaxCount())

	// So does an empty append.
	appendEvents(t, c, "b", esdb.NoStream{}, events(2)...)
	_, err = c.DeleteStream(t.Context(), "b", esdb.DeleteStreamOptions{})
	require.NoError(t, err)
	appendEvents(t, c, "b", esdb.Any{})
	got, err = readStream(t, c, "b", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Empty(t, got)
	res := appendEvents(t, c, "b", esdb.Revision(1), events(1)...)
	assert.Equal(t, uint64(2), res.NextExpectedVersion)
}

func TestSoftDeleteMetadataOnlyStream(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	var meta esdb.StreamMetadata
	meta.SetMaxCount(5)
	for _, name := range []string{"m1", "m2", "m3"} {
		_, err := c.SetStreamMetadata(t.Context(), name, esdb.AppendToStreamOptions{}, meta)
		require.NoError(t, err)
	}

	_, err := c.DeleteStream(t.Context(), "m1", esdb.DeleteStreamOptions{ExpectedRevision: esdb.Revision(0)})
	require.Error(t, err, "a metadata-only stream has no revision 0")
	assert.Contains(t, err.Error(), "WrongExpectedVersion")

	res, err := c.DeleteStream(t.Context(), "m1", esdb.DeleteStreamOptions{ExpectedRevision: esdb.NoStream{}})
	require.NoError(t, err, "a stream that exists only through its metadata is deleted at no stream")
	assert.Positive(t, res.Position.Commit)
	_, err = c.DeleteStream(t.Context(), "m2", esdb.DeleteStreamOptions{ExpectedRevision: esdb.Any{}})
	require.NoError(t, err)

	got, err := readStream(t, c, "$$m1", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.JSONEq(t, `{"$tb":9223372036854775807}`, string(got[0].Data))

	// Recreated from revision 0.
	res2 := appendEvents(t, c, "m1", esdb.NoStream{}, events(1)...)
	assert.Equal(t, uint64(0), res2.NextExpectedVersion)
	got, err = readStream(t, c, "m1", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{0}, revisions(got))
}
