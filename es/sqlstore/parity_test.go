package sqlstore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/es/sqlstore"
)

// TestParity runs the same random operations (appends with every kind of
// expected revision, re-appends of written IDs, metadata, deletes,
// tombstones, reads) on the reference store, es/memstore, and on a
// sqlstore, and requires the same results: values, errors and positions.
func TestParity(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("SQLite/Seed%d", seed), func(t *testing.T) {
			testParity(t, seed, func(clock func() time.Time) es.Store {
				return openSQLite(t, sqlstore.WithClock(clock))
			})
		})
	}
	t.Run("Postgres", func(t *testing.T) {
		postgresURL(t)
		testParity(t, 4, func(clock func() time.Time) es.Store {
			return openPostgres(t, sqlstore.WithClock(clock))
		})
	})
}

func testParity(t *testing.T, seed uint64, open func(clock func() time.Time) es.Store) {
	var nanos atomic.Int64
	nanos.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, nanos.Load()) }
	ref, got := memstore.MustNew(memstore.WithClock(clock)), open(clock)
	rnd := rand.New(rand.NewPCG(seed, seed))
	streams := []string{"a", "b", "c", es.MetadataStream("a"), es.MetadataStream("b")}
	batches := map[string][][]es.EventData{} // what was appended, to append again
	ctx := t.Context()
	multi := 0 // multi-stream appends that wrote or found their events

	expected := func() es.ExpectedRevision {
		switch rnd.IntN(5) {
		case 0:
			return es.Any
		case 1:
			return es.NoStream
		case 2:
			return es.StreamExists
		}
		return es.Exact(uint64(rnd.IntN(8)))
	}
	for op := range 400 {
		stream := streams[rnd.IntN(len(streams))]
		nanos.Add(int64(rnd.IntN(3)) * int64(time.Second))
		where := fmt.Sprintf("seed %d, operation %d", seed, op)
		switch n := rnd.IntN(23); {
		case n >= 20: // a multi-stream append
			parts := make([]es.StreamAppend, 1+rnd.IntN(3))
			for i, j := range rnd.Perm(len(streams))[:len(parts)] {
				parts[i] = es.StreamAppend{Stream: streams[j], Expected: expected()}
				if rnd.IntN(2) == 0 { // so that more multi-stream appends succeed
					parts[i].Expected = es.Any
				}
				if old := batches[streams[j]]; len(old) > 0 && rnd.IntN(4) == 0 {
					parts[i].Events = old[rnd.IntN(len(old))]
					continue
				}
				for range 1 + rnd.IntN(2) {
					parts[i].Events = append(parts[i].Events, es.EventData{ID: uuid.New(), Type: "M", Data: fmt.Appendf(nil, `{"op":%d}`, op)})
				}
				batches[streams[j]] = append(batches[streams[j]], parts[i].Events)
			}
			r1, err1 := ref.AppendStreams(ctx, parts...)
			r2, err2 := es.AppendStreams(ctx, got, parts...)
			requireSameError(t, err1, err2, "%s: AppendStreams(%+v)", where, parts)
			require.Equalf(t, r1, r2, "%s: AppendStreams(%+v)", where, parts)
			if err1 == nil {
				multi++
			}
		case n < 9: // append
			var evs []es.EventData
			if old := batches[stream]; len(old) > 0 && rnd.IntN(4) == 0 {
				evs = old[rnd.IntN(len(old))]
				if len(evs) > 1 && rnd.IntN(2) == 0 {
					evs = evs[:rnd.IntN(len(evs))+1]
				}
			} else {
				for range rnd.IntN(4) {
					evs = append(evs, es.EventData{ID: uuid.New(), Type: "E", Data: fmt.Appendf(nil, `{"op":%d}`, op)})
				}
				batches[stream] = append(batches[stream], evs)
			}
			exp := expected()
			r1, err1 := ref.Append(ctx, stream, exp, evs...)
			r2, err2 := got.Append(ctx, stream, exp, evs...)
			requireSameError(t, err1, err2, "%s: Append(%q, %v, %d events)", where, stream, exp, len(evs))
			require.Equalf(t, r1, r2, "%s: Append(%q, %v, %d events)", where, stream, exp, len(evs))
		case n < 12: // metadata
			var m es.StreamMetadata
			switch rnd.IntN(4) {
			case 0:
				m.MaxCount = uint64(rnd.IntN(4))
			case 1:
				m.TruncateBefore = uint64(rnd.IntN(6))
			case 2:
				m.MaxAge = time.Duration(1+rnd.IntN(5)) * time.Second
			}
			data, err := json.Marshal(m)
			require.NoError(t, err)
			if rnd.IntN(6) == 0 {
				data = []byte(`{"$maxCount":"not a number"}`)
			}
			ev := es.EventData{ID: uuid.New(), Type: es.EventTypeMetadata, Data: data}
			target := streams[rnd.IntN(3)]
			exp := expected()
			r1, err1 := ref.Append(ctx, es.MetadataStream(target), exp, ev)
			r2, err2 := got.Append(ctx, es.MetadataStream(target), exp, ev)
			requireSameError(t, err1, err2, "%s: metadata of %q", where, target)
			require.Equalf(t, r1, r2, "%s: metadata of %q", where, target)
		case n < 14: // delete
			exp := expected()
			r1, err1 := ref.DeleteStream(ctx, stream, exp)
			r2, err2 := got.DeleteStream(ctx, stream, exp)
			requireSameError(t, err1, err2, "%s: DeleteStream(%q, %v)", where, stream, exp)
			require.Equalf(t, r1, r2, "%s: DeleteStream(%q, %v)", where, stream, exp)
		case n < 15 && op > 200: // tombstone, late so that it does not end the test's streams early
			exp := expected()
			r1, err1 := ref.TombstoneStream(ctx, stream, exp)
			r2, err2 := got.TombstoneStream(ctx, stream, exp)
			requireSameError(t, err1, err2, "%s: TombstoneStream(%q, %v)", where, stream, exp)
			require.Equalf(t, r1, r2, "%s: TombstoneStream(%q, %v)", where, stream, exp)
		case n < 18: // read a stream
			opts := es.ReadStreamOptions{From: uint64(rnd.IntN(8)), Limit: uint64(rnd.IntN(4))}
			if rnd.IntN(2) == 0 {
				opts.Direction = es.Backwards
				if rnd.IntN(2) == 0 {
					opts.From = es.StreamEnd
				}
			}
			e1, err1 := collectEvents(ref.ReadStream(ctx, stream, opts))
			e2, err2 := collectEvents(got.ReadStream(ctx, stream, opts))
			requireSameError(t, err1, err2, "%s: ReadStream(%q, %+v)", where, stream, opts)
			requireSameEvents(t, e1, e2, "%s: ReadStream(%q, %+v)", where, stream, opts)
		default: // read $all
			p := uint64(rnd.IntN(40))
			opts := es.ReadAllOptions{From: es.Position{Commit: p, Prepare: p}, Limit: uint64(rnd.IntN(6))}
			if rnd.IntN(2) == 0 {
				opts.Direction = es.Backwards
			}
			if rnd.IntN(4) == 0 {
				opts.From = es.End
			}
			e1, err1 := collectEvents(ref.ReadAll(ctx, opts))
			e2, err2 := collectEvents(got.ReadAll(ctx, opts))
			requireSameError(t, err1, err2, "%s: ReadAll(%+v)", where, opts)
			requireSameEvents(t, e1, e2, "%s: ReadAll(%+v)", where, opts)
		}
	}
	e1, err1 := collectEvents(ref.ReadAll(ctx, es.ReadAllOptions{}))
	e2, err2 := collectEvents(got.ReadAll(ctx, es.ReadAllOptions{}))
	require.NoError(t, errors.Join(err1, err2))
	requireSameEvents(t, e1, e2, "seed %d: the whole log", seed)
	t.Logf("seed %d: %d events in $all, %d multi-stream appends that succeeded", seed, len(e1), multi)
}

func collectEvents(seq func(func(es.RecordedEvent, error) bool)) ([]es.RecordedEvent, error) {
	var out []es.RecordedEvent
	for ev, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// requireSameError checks that two errors are both nil or mean the same.
func requireSameError(t *testing.T, want, got error, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	if want == nil || got == nil {
		require.Equalf(t, want == nil, got == nil, "%s: memstore says %v, sqlstore says %v", what, want, got)
		return
	}
	for _, sentinel := range []error{es.ErrWrongExpectedVersion, es.ErrStreamNotFound, es.ErrStreamDeleted, es.ErrInvalidArgument} {
		require.Equalf(t, errors.Is(want, sentinel), errors.Is(got, sentinel), "%s: memstore says %v, sqlstore says %v", what, want, got)
	}
	var w1, w2 *es.WrongExpectedVersionError
	if errors.As(want, &w1) {
		require.ErrorAs(t, got, &w2, what)
		require.Equalf(t, *w1, *w2, "%s", what)
	}
}

// requireSameEvents compares events; the IDs of the records a store writes
// itself (metadata of deletes, tombstones) are random.
func requireSameEvents(t *testing.T, want, got []es.RecordedEvent, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	require.Equalf(t, len(want), len(got), "%s: number of events", what)
	for i := range want {
		w, g := want[i], got[i]
		if w.IsSystem() && w.ID != g.ID {
			g.ID = w.ID
		}
		require.Truef(t, bytes.Equal(w.Data, g.Data) && bytes.Equal(w.Metadata, g.Metadata), "%s: event %d: data %q, %q", what, i, w.Data, g.Data)
		require.Truef(t, w.Created.Equal(g.Created), "%s: event %d: created %v, %v", what, i, w.Created, g.Created)
		w.Data, w.Metadata, g.Data, g.Metadata, w.Created, g.Created = nil, nil, nil, nil, time.Time{}, time.Time{}
		require.Equalf(t, w, g, "%s: event %d", what, i)
	}
}
