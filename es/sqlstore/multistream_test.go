package sqlstore_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/es/sqlstore"
)

// TestAppendStreamsConcurrent races two writers doing multi-stream appends
// over the same streams, with their parts in opposite orders: through one
// Store (their writes share group transactions) and through two Stores on
// one database (as if in two processes). No append may deadlock, fail, be
// lost or be written twice; every stream's revisions are contiguous, and
// the events of each append follow each other in $all in the order of its
// parts.
func TestAppendStreamsConcurrent(t *testing.T) {
	const appends = 40
	for name, shared := range map[string]func(t *testing.T, opts ...sqlstore.Option) func(t *testing.T) *sqlstore.Store{
		"SQLite": sharedSQLite, "Postgres": sharedPostgres,
	} {
		t.Run(name, func(t *testing.T) {
			open := shared(t)
			one := open(t)
			t.Run("OneStore", func(t *testing.T) { testAppendStreamsConcurrent(t, one, one, "one", appends) })
			t.Run("TwoStores", func(t *testing.T) { testAppendStreamsConcurrent(t, one, open(t), "two", appends) })
		})
	}
}

// raced is the data of an event written by testAppendStreamsConcurrent.
type raced struct {
	Writer, Append, Part int
}

func testAppendStreamsConcurrent(t *testing.T, a, b *sqlstore.Store, prefix string, appends int) {
	streams := []string{prefix + "-multi-a", prefix + "-multi-b", prefix + "-multi-c"}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for w, store := range []*sqlstore.Store{a, b} {
		order := slices.Clone(streams)
		if w == 1 {
			slices.Reverse(order)
		}
		wg.Go(func() {
			for i := range appends {
				parts := make([]es.StreamAppend, len(order))
				for p, stream := range order {
					data, err := json.Marshal(raced{Writer: w, Append: i, Part: p})
					if !assert.NoError(t, err) {
						return
					}
					parts[p] = es.StreamAppend{Stream: stream, Expected: es.Any, Events: []es.EventData{
						{ID: uuid.New(), Type: "Raced", ContentType: es.ContentTypeJSON, Data: data},
					}}
				}
				res, err := store.AppendStreams(ctx, parts...)
				if !assert.NoError(t, err, "writer %d, append %d", w, i) {
					return
				}
				for p := 1; p < len(res); p++ {
					if !assert.Equal(t, res[p-1].Position.Commit+1, res[p].Position.Commit, "writer %d, append %d: the positions of the parts follow each other", w, i) {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed(), "the writers failed")

	for _, stream := range streams {
		var (
			revs []uint64
			seen = map[raced]bool{}
		)
		for ev, err := range a.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
			require.NoError(t, err, "ReadStream %s", stream)
			var r raced
			require.NoError(t, json.Unmarshal(ev.Data, &r))
			require.False(t, seen[r], "event %+v of %s is written twice", r, stream)
			seen[r] = true
			revs = append(revs, ev.Revision)
		}
		require.Len(t, revs, 2*appends, "every append wrote an event to %s", stream)
		for i, rev := range revs {
			require.Equal(t, uint64(i), rev, "the revisions of %s are contiguous", stream)
		}
	}

	// In $all, each append's events are consecutive, in the order of its
	// parts.
	var mine []raced
	for ev, err := range a.ReadAll(ctx, es.ReadAllOptions{}) {
		require.NoError(t, err, "ReadAll")
		if ev.Type != "Raced" || !slices.Contains(streams, ev.Stream) {
			continue
		}
		var r raced
		require.NoError(t, json.Unmarshal(ev.Data, &r))
		mine = append(mine, r)
	}
	require.Len(t, mine, 2*appends*len(streams), "the events in $all")
	for i := 0; i < len(mine); i += len(streams) {
		for p := range streams {
			want := raced{Writer: mine[i].Writer, Append: mine[i].Append, Part: p}
			require.Equal(t, want, mine[i+p], "event %d of $all: the parts of an append follow each other in order", i+p)
		}
	}
}

// TestAppendStreamsParity runs multi-stream appends whose parts change each
// other's streams (a stream and its metadata stream, a soft-deleted stream
// recreated) on memstore, the reference, and on SQLite, and compares the
// results and the streams.
func TestAppendStreamsParity(t *testing.T) {
	const s = "order-1"
	meta := func(m es.StreamMetadata) es.EventData {
		data, err := json.Marshal(m)
		require.NoError(t, err)
		return es.EventData{ID: uuid.New(), Type: es.EventTypeMetadata, ContentType: es.ContentTypeJSON, Data: data}
	}
	event := func() es.EventData {
		return es.EventData{ID: uuid.New(), Type: "Placed", ContentType: es.ContentTypeJSON, Data: []byte(`{}`)}
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, store es.Store)
		parts []es.StreamAppend
	}{
		{name: "StreamThenMetadata", parts: []es.StreamAppend{
			{Stream: s, Expected: es.Any, Events: []es.EventData{event()}},
			{Stream: es.MetadataStream(s), Expected: es.Any, Events: []es.EventData{meta(es.StreamMetadata{MaxCount: 5})}},
		}},
		{name: "MetadataThenStream", parts: []es.StreamAppend{
			{Stream: es.MetadataStream(s), Expected: es.Any, Events: []es.EventData{meta(es.StreamMetadata{MaxCount: 5})}},
			{Stream: s, Expected: es.Any, Events: []es.EventData{event(), event()}},
		}},
		{name: "RecreateThenMetadata", setup: softDeleted(s, event(), event()), parts: []es.StreamAppend{
			{Stream: s, Expected: es.Any, Events: []es.EventData{event()}},
			{Stream: es.MetadataStream(s), Expected: es.Any, Events: []es.EventData{meta(es.StreamMetadata{MaxCount: 5})}},
		}},
		{name: "MetadataThenRecreate", setup: softDeleted(s, event(), event()), parts: []es.StreamAppend{
			{Stream: es.MetadataStream(s), Expected: es.Any, Events: []es.EventData{meta(es.StreamMetadata{MaxCount: 9})}},
			{Stream: s, Expected: es.Any, Events: []es.EventData{event()}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem, err := memstore.New()
			require.NoError(t, err, "memstore.New")
			stores := []es.Store{mem, openSQLite(t)}
			results := make([][]es.AppendResult, len(stores))
			errs := make([]error, len(stores))
			for i, store := range stores {
				if c.setup != nil {
					c.setup(t, store)
				}
				results[i], errs[i] = es.AppendStreams(t.Context(), store, c.parts...)
			}
			require.NoError(t, errs[0], "memstore")
			require.NoError(t, errs[1], "sqlstore")
			require.Len(t, results[1], len(results[0]))
			for i := range results[0] {
				assert.Equal(t, results[0][i].Revision, results[1][i].Revision, "the revision of part %d", i)
			}
			for _, stream := range []string{s, es.MetadataStream(s)} {
				want, err := collectEvents(stores[0].ReadStream(t.Context(), stream, es.ReadStreamOptions{}))
				require.NoError(t, err)
				got, err := collectEvents(stores[1].ReadStream(t.Context(), stream, es.ReadStreamOptions{}))
				require.NoError(t, err)
				require.Len(t, got, len(want), "the events of %s", stream)
				for i := range want {
					assert.Equal(t, want[i].Revision, got[i].Revision, "%s event %d", stream, i)
					assert.Equal(t, want[i].Type, got[i].Type, "%s event %d", stream, i)
					if want[i].Type != es.EventTypeMetadata {
						assert.Equal(t, want[i].ID, got[i].ID, "%s event %d", stream, i)
					}
				}
			}
			want, _, err := es.GetStreamMetadata(t.Context(), stores[0], s)
			require.NoError(t, err)
			got, _, err := es.GetStreamMetadata(t.Context(), stores[1], s)
			require.NoError(t, err)
			assert.Equal(t, want, got, "the metadata of %s", s)
		})
	}
}

// softDeleted returns a setup that writes events to stream and
// soft-deletes it.
func softDeleted(stream string, events ...es.EventData) func(t *testing.T, store es.Store) {
	return func(t *testing.T, store es.Store) {
		_, err := store.Append(t.Context(), stream, es.NoStream, events...)
		require.NoError(t, err)
		_, err = store.DeleteStream(t.Context(), stream, es.Any)
		require.NoError(t, err)
	}
}

// TestPostgresAppendStreamsOutage checks that a multi-stream append keeps
// Append's behaviour when PostgreSQL cannot be reached: run again on a new
// connection after a reset; es.ErrUnavailable within the call timeout
// when the connections stall, and at once when they are refused; nothing
// written by a failed one.
func TestPostgresAppendStreamsOutage(t *testing.T) {
	const timeout = time.Second
	store, p := openBehindProxy(t, timeout)
	ctx := t.Context()
	parts := func(typ string, expected es.ExpectedRevision) []es.StreamAppend {
		return []es.StreamAppend{
			{Stream: "outage-b", Expected: expected, Events: []es.EventData{{Type: typ}}},
			{Stream: "outage-a", Expected: expected, Events: []es.EventData{{Type: typ}}},
		}
	}
	_, err := store.AppendStreams(ctx, parts("Before", es.NoStream)...)
	require.NoError(t, err)

	p.Reset()
	res, err := store.AppendStreams(ctx, parts("AfterReset", es.Exact(0))...)
	require.NoError(t, err, "the multi-stream append is run again on a new connection")
	assert.Equal(t, []uint64{1, 1}, []uint64{res[0].Revision, res[1].Revision})

	p.Stall()
	started := time.Now()
	_, err = store.AppendStreams(ctx, parts("Stalled", es.Exact(1))...)
	require.ErrorIs(t, err, es.ErrUnavailable, "stalled connections")
	assert.Less(t, time.Since(started), timeout+time.Second, "failed within the call timeout")
	p.Restore()

	p.Cut()
	_, err = store.AppendStreams(ctx, parts("Cut", es.Exact(1))...)
	require.ErrorIs(t, err, es.ErrUnavailable, "refused connections")
	p.Restore()

	_, err = store.AppendStreams(ctx, parts("After", es.Exact(1))...)
	require.NoError(t, err, "the same store appends once the network is back")
	for _, stream := range []string{"outage-a", "outage-b"} {
		var types []string
		for ev, err := range store.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
			require.NoError(t, err)
			types = append(types, ev.Type)
		}
		assert.Equal(t, []string{"Before", "AfterReset", "After"}, types, "nothing of the failed appends in %s", stream)
	}
}
