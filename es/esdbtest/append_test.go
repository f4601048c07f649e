package esdbtest_test

import (
	"bytes"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

func TestAppendExpectedRevisionMatrix(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)

	// Each case gets its own stream: "missing" never exists, "two" has
	// revisions 0 and 1, "meta-only" has metadata but no events.
	tests := []struct {
		name     string
		stream   string
		expected esdb.ExpectedRevision
		ok       bool
		want     uint64 // NextExpectedVersion on success
		message  string // error text on failure
	}{
		{"any on missing", "missing", esdb.Any{}, true, 0, ""},
		{"no stream on missing", "missing", esdb.NoStream{}, true, 0, ""},
		{"stream exists on missing", "missing", esdb.StreamExists{}, false, 0, "expecting 'stream_exists' but got 'no_stream'"},
		{"exact on missing", "missing", esdb.Revision(0), false, 0, "expecting '0' but got 'no_stream'"},
		{"any on existing", "two", esdb.Any{}, true, 2, ""},
		{"no stream on existing", "two", esdb.NoStream{}, false, 0, "expecting 'no_stream' but got '1'"},
		{"stream exists on existing", "two", esdb.StreamExists{}, true, 2, ""},
		{"exact current", "two", esdb.Revision(1), true, 2, ""},
		{"exact below current", "two", esdb.Revision(0), false, 0, "expecting '0' but got '1'"},
		{"exact above current", "two", esdb.Revision(5), false, 0, "expecting '5' but got '1'"},
		{"stream exists on metadata only", "meta-only", esdb.StreamExists{}, true, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := tt.stream + "-" + t.Name()
			switch tt.stream {
			case "two":
				appendEvents(t, c, stream, esdb.NoStream{}, events(2)...)
			case "meta-only":
				_, err := c.SetStreamMetadata(t.Context(), stream, esdb.AppendToStreamOptions{}, esdb.StreamMetadata{})
				require.NoError(t, err)
			}
			res, err := c.AppendToStream(t.Context(), stream, esdb.AppendToStreamOptions{ExpectedRevision: tt.expected}, event("Tested"))
			if !tt.ok {
				require.Equal(t, esdb.ErrorCodeWrongExpectedVersion, errorCode(t, err))
				assert.Contains(t, err.Error(), tt.message)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, res.NextExpectedVersion)
			assert.Positive(t, res.CommitPosition)
			assert.Equal(t, res.CommitPosition, res.PreparePosition)
		})
	}
}

func TestAppendReportsPositionOfLastEvent(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	first := appendEvents(t, c, "a", esdb.NoStream{}, events(3)...)
	second := appendEvents(t, c, "b", esdb.NoStream{}, events(1)...)
	assert.Greater(t, second.CommitPosition, first.CommitPosition)

	all := srv.All()
	require.Len(t, all, 4)
	assert.Equal(t, all[2].Position, first.CommitPosition)
	assert.Equal(t, all[3].Position, second.CommitPosition)
	for i := 1; i < len(all); i++ {
		assert.Greater(t, all[i].Position, all[i-1].Position)
	}
}

func TestAppendIdempotency(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	evs := events(3)
	first := appendEvents(t, c, "s", esdb.NoStream{}, evs...)

	t.Run("no stream again", func(t *testing.T) {
		res := appendEvents(t, c, "s", esdb.NoStream{}, evs...)
		assert.Equal(t, first, res)
	})
	t.Run("any again", func(t *testing.T) {
		res := appendEvents(t, c, "s", esdb.Any{}, evs...)
		assert.Equal(t, first, res)
	})
	t.Run("stream exists with a suffix", func(t *testing.T) {
		res := appendEvents(t, c, "s", esdb.StreamExists{}, evs[1:]...)
		assert.Equal(t, first, res)
	})
	t.Run("exact below current with the following IDs", func(t *testing.T) {
		res := appendEvents(t, c, "s", esdb.Revision(0), evs[1:2]...)
		assert.Equal(t, uint64(1), res.NextExpectedVersion)
		assert.Equal(t, srv.Events("s")[1].Position, res.CommitPosition)
	})
	t.Run("partial match", func(t *testing.T) {
		_, err := c.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}},
			evs[0], event("New"))
		assert.Equal(t, esdb.ErrorCodeWrongExpectedVersion, errorCode(t, err))
	})
	t.Run("exact below current with other IDs", func(t *testing.T) {
		_, err := c.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)},
			event("New"))
		assert.Equal(t, esdb.ErrorCodeWrongExpectedVersion, errorCode(t, err))
	})
	assert.Len(t, srv.Events("s"), 3, "idempotent appends write nothing")
}

func TestEmptyAppend(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	res := appendEvents(t, c, "s", esdb.NoStream{})
	assert.Zero(t, res.CommitPosition)
	assert.Empty(t, srv.All())

	written := appendEvents(t, c, "s", esdb.NoStream{}, events(2)...)
	res = appendEvents(t, c, "s", esdb.Revision(1))
	assert.Equal(t, written, res)

	_, err := c.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(7)})
	assert.Equal(t, esdb.ErrorCodeWrongExpectedVersion, errorCode(t, err))
}

func TestAppendRoundTripsEventFields(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	ev := event("OrderPlaced")
	bin := esdb.EventData{EventType: "Blob", ContentType: esdb.ContentTypeBinary, Data: []byte{0, 1, 2}}
	appendEvents(t, c, "s", esdb.NoStream{}, ev, bin)

	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, ev.EventID, got[0].EventID)
	assert.Equal(t, "OrderPlaced", got[0].EventType)
	assert.Equal(t, "application/json", got[0].ContentType)
	assert.Equal(t, ev.Data, got[0].Data)
	assert.Equal(t, ev.Metadata, got[0].UserMetadata)
	assert.Equal(t, "s", got[0].StreamID)
	assert.False(t, got[0].CreatedDate.IsZero())
	assert.Equal(t, "application/octet-stream", got[1].ContentType)
	assert.Equal(t, []byte{0, 1, 2}, got[1].Data)
	assert.Empty(t, got[1].UserMetadata)
}

func TestAppendOverMaxAppendSize(t *testing.T) {
	srv := esdbtest.New(t, esdbtest.WithMaxAppendSize(1024))
	c := newClient(t, srv)
	big := esdb.EventData{EventType: "Big", ContentType: esdb.ContentTypeBinary, Data: bytes.Repeat([]byte{1}, 1025)}
	_, err := c.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{}, big)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Maximum Append Size of 1024 Exceeded")
	assert.Empty(t, srv.All())

	// The default limit is 1 MiB.
	srv = esdbtest.New(t)
	c = newClient(t, srv)
	big.Data = bytes.Repeat([]byte{1}, esdbtest.DefaultMaxAppendSize)
	_, err = c.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{}, big)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Maximum Append Size")
	big.Data = big.Data[:esdbtest.DefaultMaxAppendSize/2]
	appendEvents(t, c, "s", esdb.Any{}, big)
}
