package esdbtest_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

func TestReadStream(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(5)...)

	tests := []struct {
		name  string
		opts  esdb.ReadStreamOptions
		count uint64
		want  []uint64
	}{
		{"forwards from start", esdb.ReadStreamOptions{}, 3, []uint64{0, 1, 2}},
		{"forwards from revision", esdb.ReadStreamOptions{From: esdb.Revision(3)}, 10, []uint64{3, 4}},
		{"forwards past the end", esdb.ReadStreamOptions{From: esdb.Revision(9)}, 10, []uint64{}},
		{"forwards from end", esdb.ReadStreamOptions{From: esdb.End{}}, 10, []uint64{}},
		{"forwards everything", esdb.ReadStreamOptions{}, math.MaxUint64, []uint64{0, 1, 2, 3, 4}},
		{"backwards from end", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 2, []uint64{4, 3}},
		{"backwards from revision", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(1)}, 10, []uint64{1, 0}},
		{"backwards past the end", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(99)}, 2, []uint64{4, 3}},
		{"backwards from start", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Start{}}, 10, []uint64{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readStream(t, c, "s", tt.opts, tt.count)
			require.NoError(t, err)
			assert.Equal(t, tt.want, revisions(got))
		})
	}
}

func TestReadMissingStream(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	for _, dir := range []esdb.Direction{esdb.Forwards, esdb.Backwards} {
		_, err := readStream(t, c, "missing", esdb.ReadStreamOptions{Direction: dir}, 10)
		assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err))
	}
}

func TestReadAll(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "a", esdb.NoStream{}, events(2)...)
	appendEvents(t, c, "b", esdb.NoStream{}, events(2)...)
	appendEvents(t, c, "a", esdb.Revision(1), events(1)...)

	all := readAll(t, c, esdb.ReadAllOptions{}, 100)
	require.Len(t, all, 5)
	var names []string
	for i, e := range all {
		names = append(names, e.StreamID)
		if i > 0 {
			assert.Greater(t, e.Position.Commit, all[i-1].Position.Commit)
		}
		assert.Equal(t, e.Position.Commit, e.Position.Prepare)
	}
	assert.Equal(t, []string{"a", "a", "b", "b", "a"}, names)

	p := all[2].Position
	from := readAll(t, c, esdb.ReadAllOptions{From: p}, 100)
	require.Len(t, from, 3, "forwards from a position is inclusive")
	assert.Equal(t, p, from[0].Position)

	back := readAll(t, c, esdb.ReadAllOptions{From: p, Direction: esdb.Backwards}, 100)
	require.Len(t, back, 2, "backwards from a position is exclusive")
	assert.Equal(t, all[1].Position, back[0].Position)
	assert.Equal(t, all[0].Position, back[1].Position)

	last := readAll(t, c, esdb.ReadAllOptions{From: esdb.End{}, Direction: esdb.Backwards}, 1)
	require.Len(t, last, 1)
	assert.Equal(t, all[4].Position, last[0].Position)

	assert.Empty(t, readAll(t, c, esdb.ReadAllOptions{From: esdb.End{}}, 10))
	assert.Len(t, readAll(t, c, esdb.ReadAllOptions{}, 2), 2)
}

func TestMetadataMaxCount(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(5)...)
	var meta esdb.StreamMetadata
	meta.SetMaxCount(2)
	_, err := c.SetStreamMetadata(t.Context(), "s", esdb.AppendToStreamOptions{}, meta)
	require.NoError(t, err)

	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{3, 4}, revisions(got))
	got, err = readStream(t, c, "s", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{4, 3}, revisions(got))

	read, err := c.GetStreamMetadata(t.Context(), "s", esdb.ReadStreamOptions{})
	require.NoError(t, err)
	require.NotNil(t, read.MaxCount())
	assert.Equal(t, uint64(2), *read.MaxCount())

	// $all still has every event.
	assert.Len(t, readAll(t, c, esdb.ReadAllOptions{}, 100), 6)
}

func TestMetadataTruncateBefore(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(5)...)
	var meta esdb.StreamMetadata
	meta.SetTruncateBefore(3)
	_, err := c.SetStreamMetadata(t.Context(), "s", esdb.AppendToStreamOptions{}, meta)
	require.NoError(t, err)

	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{3, 4}, revisions(got))

	meta.SetTruncateBefore(100)
	_, err = c.SetStreamMetadata(t.Context(), "s", esdb.AppendToStreamOptions{}, meta)
	require.NoError(t, err)
	got, err = readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err, "a stream whose events are all cut away is empty, not missing")
	assert.Empty(t, got)
}

func TestMetadataMaxAge(t *testing.T) {
	clock := newFakeClock()
	srv := esdbtest.New(t, esdbtest.WithClock(clock.Now))
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(2)...)
	var meta esdb.StreamMetadata
	meta.SetMaxAge(time.Minute)
	_, err := c.SetStreamMetadata(t.Context(), "s", esdb.AppendToStreamOptions{}, meta)
	require.NoError(t, err)

	clock.Advance(2 * time.Minute)
	appendEvents(t, c, "s", esdb.Revision(1), events(1)...)
	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{2}, revisions(got))
	assert.Equal(t, clock.Now().UTC(), got[0].CreatedDate)

	clock.Advance(2 * time.Minute)
	got, err = readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestMetadataStreamKeepsNewestEvent(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	for i := range uint64(3) {
		var meta esdb.StreamMetadata
		meta.SetMaxCount(i + 10)
		_, err := c.SetStreamMetadata(t.Context(), "s", esdb.AppendToStreamOptions{}, meta)
		require.NoError(t, err)
	}
	got, err := readStream(t, c, "$$s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, uint64(2), got[0].EventNumber)
	assert.Equal(t, "$metadata", got[0].EventType)
	assert.JSONEq(t, `{"$maxCount":12}`, string(got[0].Data))
}

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestReadAllFromInvalidPosition(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(2)...)
	all := srv.All()
	between := esdb.Position{Commit: all[0].Position + 1, Prepare: all[0].Position + 1}

	rs, err := c.ReadAll(t.Context(), esdb.ReadAllOptions{From: between}, 10)
	_, err = collect(rs, err)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid position")

	_, err = c.SubscribeToAll(t.Context(), esdb.SubscribeToAllOptions{From: between})
	require.Error(t, err)

	// Zero, record positions and the end are fine.
	for _, p := range []esdb.Position{{}, {Commit: all[1].Position, Prepare: all[1].Position}, {Commit: 1 << 40, Prepare: 1 << 40}} {
		readAll(t, c, esdb.ReadAllOptions{From: p}, 10)
	}
}

func TestResolveLinks(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "target", esdb.NoStream{}, events(2)...)
	appendEvents(t, c, "links", esdb.NoStream{},
		esdb.EventData{EventType: "$>", ContentType: esdb.ContentTypeBinary, Data: []byte("1@target")},
		esdb.EventData{EventType: "$>", ContentType: esdb.ContentTypeBinary, Data: []byte("7@target")},
	)

	rs, err := c.ReadStream(t.Context(), "links", esdb.ReadStreamOptions{ResolveLinkTos: true}, 10)
	require.NoError(t, err)
	defer rs.Close()
	ev, err := rs.Recv()
	require.NoError(t, err)
	require.NotNil(t, ev.Link)
	assert.Equal(t, "target", ev.Event.StreamID)
	assert.Equal(t, uint64(1), ev.Event.EventNumber)
	assert.Equal(t, "links", ev.Link.StreamID)
	assert.Equal(t, "links", ev.OriginalEvent().StreamID)

	ev, err = rs.Recv()
	require.NoError(t, err)
	assert.Nil(t, ev.Event, "a link to a missing event comes back alone")
	require.NotNil(t, ev.Link)
	assert.Equal(t, "$>", ev.OriginalEvent().EventType)

	// Without resolution the link is returned as is.
	got, err := readStream(t, c, "links", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, "$>", got[0].EventType)
}

func TestHugeTruncateBeforeHidesEverything(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(3)...)
	require.NoError(t, srv.Seed("$$s", esdbtest.Event{Type: "$metadata", Data: []byte(`{"$tb":18446744073709551615}`)}))
	for _, dir := range []esdb.Direction{esdb.Forwards, esdb.Backwards} {
		got, err := readStream(t, c, "s", esdb.ReadStreamOptions{Direction: dir, From: esdb.End{}}, 10)
		require.NoError(t, err)
		assert.Empty(t, got)
	}
}

// Stream reads carry each event's `$all` position, in the recorded event
// and as the read event's commit position (EventStoreDB 22.6 and later, see
// TestStreamReadCarriesCommitPosition); `$all` reads too.
func TestPositionsOfStreamAndAllReads(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	res := appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)

	rs, err := c.ReadStream(t.Context(), "s", esdb.ReadStreamOptions{}, 1)
	require.NoError(t, err)
	ev, err := rs.Recv()
	rs.Close()
	require.NoError(t, err)
	require.NotNil(t, ev.Commit)
	assert.Equal(t, res.CommitPosition, *ev.Commit)
	assert.Equal(t, res.CommitPosition, ev.OriginalEvent().Position.Commit)

	rs, err = c.ReadAll(t.Context(), esdb.ReadAllOptions{}, 1)
	require.NoError(t, err)
	ev, err = rs.Recv()
	rs.Close()
	require.NoError(t, err)
	require.NotNil(t, ev.Commit)
	assert.Equal(t, res.CommitPosition, *ev.Commit)
	assert.Equal(t, res.CommitPosition, ev.OriginalEvent().Position.Commit)
}
