package sqlstore_test

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
	"github.com/eventfold/eventfold/projection"
)

// clock is a settable clock for WithClock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type opener func(t *testing.T, opts ...sqlstore.Option) *sqlstore.Store

// forEachDB runs test on SQLite and on PostgreSQL; open opens another Store
// on the same database each time it is called.
func forEachDB(t *testing.T, test func(t *testing.T, open opener)) {
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "events.db")
		test(t, func(t *testing.T, opts ...sqlstore.Option) *sqlstore.Store { return openSQLitePath(t, path, opts...) })
	})
	t.Run("Postgres", func(t *testing.T) {
		url := postgresURL(t)
		schema := newSchema(t, url)
		test(t, func(t *testing.T, opts ...sqlstore.Option) *sqlstore.Store {
			t.Helper()
			s, err := postgres.Open(t.Context(), url, append([]sqlstore.Option{sqlstore.WithSchema(schema),
				sqlstore.WithPollInterval(10 * time.Millisecond)}, opts...)...)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			return s
		})
	})
}

// allEvents returns every event of the events table, by position.
func allEvents(t *testing.T, s es.Store) []es.RecordedEvent {
	t.Helper()
	var out []es.RecordedEvent
	for ev, err := range s.ReadAll(t.Context(), es.ReadAllOptions{}) {
		require.NoError(t, err)
		out = append(out, ev)
	}
	return out
}

// positions returns the positions of evs.
func positions(evs []es.RecordedEvent) map[uint64]bool {
	m := make(map[uint64]bool, len(evs))
	for _, ev := range evs {
		m[ev.Position.Commit] = true
	}
	return m
}

// mustKeep returns the positions of all (the whole log) that a scavenge
// below horizon keeps: everything at horizon and after, the events that
// reads of their stream return, the last event of every stream that is
// not tombstoned, and tombstone records. It is the oracle of the tests: it
// knows nothing of how the store scavenges.
func mustKeep(t *testing.T, s es.Store, all []es.RecordedEvent, horizon uint64) map[uint64]bool {
	t.Helper()
	keep := map[uint64]bool{}
	last := map[string]es.RecordedEvent{}
	tombstoned := map[string]bool{}
	for _, ev := range all {
		switch {
		case ev.Position.Commit >= horizon:
			keep[ev.Position.Commit] = true
		case ev.Revision == esdriver.TombstoneRevision:
			keep[ev.Position.Commit] = true
		}
		if ev.Revision == esdriver.TombstoneRevision {
			tombstoned[ev.Stream] = true
		} else if l, ok := last[ev.Stream]; !ok || ev.Revision > l.Revision {
			last[ev.Stream] = ev
		}
	}
	for stream, ev := range last {
		if tombstoned[stream] {
			continue
		}
		keep[ev.Position.Commit] = true
		for e, err := range s.ReadStream(t.Context(), stream, es.ReadStreamOptions{}) {
			if err != nil {
				require.ErrorIs(t, err, es.ErrStreamNotFound, "read %s", stream) // soft-deleted
				break
			}
			keep[e.Position.Commit] = true
		}
	}
	return keep
}

// reads returns what forwards and backwards reads of every stream of all
// return: events (revision, ID, position) or errors.
func reads(t *testing.T, s es.Store, all []es.RecordedEvent) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ev := range all {
		for _, dir := range []es.ReadStreamOptions{{}, {Direction: es.Backwards, From: es.StreamEnd}} {
			key := ev.Stream + " " + dir.Direction.String()
			if _, ok := out[key]; ok {
				continue
			}
			var b strings.Builder
			for e, err := range s.ReadStream(t.Context(), ev.Stream, dir) {
				if err != nil {
					fmt.Fprintf(&b, "error %v;", err)
					break
				}
				fmt.Fprintf(&b, "%d %s %v;", e.Revision, e.ID, e.Position)
			}
			out[key] = b.String()
		}
	}
	return out
}

// populate writes streams that metadata, deletes and tombstones cut in
// every way. It returns the number of events a scavenge removes.
func populate(t *testing.T, s es.Store, clk *clock) int {
	t.Helper()
	ctx := t.Context()
	app := func(stream string, n int) {
		for i := range n {
			_, err := s.Append(ctx, stream, es.Any, es.EventData{Type: "E", Data: fmt.Appendf(nil, `{"i":%d}`, i)})
			require.NoError(t, err)
		}
	}
	meta := func(stream string, m es.StreamMetadata) {
		_, err := es.SetStreamMetadata(ctx, s, stream, es.Any, m)
		require.NoError(t, err)
	}
	app("keep", 3)                                           // 0
	meta("cp", es.StreamMetadata{MaxCount: 1})               // like a checkpoint stream
	app("cp", 5)                                             // 4
	app("mc", 5)                                             //
	meta("mc", es.StreamMetadata{MaxCount: 3})               //
	meta("mc", es.StreamMetadata{MaxCount: 2})               // 3, and 1 of $$mc
	app("tb", 5)                                             //
	meta("tb", es.StreamMetadata{TruncateBefore: 3})         // 3
	app("tb-beyond", 3)                                      //
	meta("tb-beyond", es.StreamMetadata{TruncateBefore: 10}) // 2: the last stays
	meta("age", es.StreamMetadata{MaxAge: time.Minute})      //
	app("age", 3)                                            // 3 (once the clock moved)
	meta("age-all", es.StreamMetadata{MaxAge: time.Minute})  //
	app("age-all", 3)                                        // 2: the last stays
	clk.advance(2 * time.Minute)
	app("age", 2) // still young
	app("soft", 3)
	_, err := s.DeleteStream(ctx, "soft", es.Any) // 2: the last stays
	require.NoError(t, err)
	app("recreated", 3)
	_, err = s.DeleteStream(ctx, "recreated", es.Any)
	require.NoError(t, err)
	app("recreated", 2) // 3, and 1 of $$recreated
	app("tomb", 3)
	_, err = s.TombstoneStream(ctx, "tomb", es.Any) // 3: the record stays
	require.NoError(t, err)
	return 4 + 3 + 1 + 3 + 2 + 3 + 2 + 2 + 3 + 1 + 3
}

func TestScavenge(t *testing.T) {
	forEachDB(t, func(t *testing.T, open opener) {
		ctx := t.Context()
		clk := newClock()
		// Small transactions, so that streams span several.
		s := open(t, sqlstore.WithClock(clk.now), sqlstore.WithScavengeBatch(2, 3, 4))
		want := populate(t, s, clk)
		before := allEvents(t, s)
		readsBefore := reads(t, s, before)

		// Below a horizon in the middle of the log: only events before it go.
		var horizon es.Position
		for _, ev := range before {
			if ev.Stream == "soft" {
				horizon = ev.Position
				break
			}
		}
		res, err := s.Scavenge(ctx, horizon)
		require.NoError(t, err)
		assert.Equal(t, horizon, res.Horizon)
		assert.Positive(t, res.Streams)
		keep := mustKeep(t, s, before, horizon.Commit)
		assert.Equal(t, keep, positions(allEvents(t, s)), "kept below the horizon %v", horizon)
		assert.EqualValues(t, len(before)-len(keep), res.Deleted)
		first := res.Deleted

		// Below the end: everything that no read returns goes.
		res, err = s.Scavenge(ctx, es.End)
		require.NoError(t, err)
		assert.Equal(t, before[len(before)-1].Position, res.Horizon, "the horizon is lowered to the head")
		after := allEvents(t, s)
		assert.Equal(t, mustKeep(t, s, before, es.End.Commit), positions(after))
		assert.EqualValues(t, want, first+res.Deleted, "events deleted")
		assert.Len(t, after, len(before)-want)
		assert.Equal(t, readsBefore, reads(t, s, before), "reads after the scavenge")

		// Again: nothing more.
		res, err = s.Scavenge(ctx, es.End)
		require.NoError(t, err)
		assert.Zero(t, res.Deleted)

		// A catch-up subscription from a revision below the scavenged ones
		// delivers what is left.
		sub := subscribe(t, s.SubscribeStream, "cp", es.SubscribeStreamOptions{From: es.AfterRevision(0)})
		assert.EqualValues(t, 4, sub.Next(t).Revision)

		// Appends continue the revisions.
		res1, err := s.Append(ctx, "cp", es.Any, es.EventData{Type: "E"})
		require.NoError(t, err)
		assert.EqualValues(t, 5, res1.Revision)
		assert.EqualValues(t, 5, sub.Next(t).Revision)
		res2, err := s.Append(ctx, "mc", es.Exact(4), es.EventData{Type: "E"})
		require.NoError(t, err)
		assert.EqualValues(t, 5, res2.Revision)

		// An empty append reports the kept last event of a soft-deleted stream.
		var softLast es.RecordedEvent
		for _, ev := range before {
			if ev.Stream == "soft" {
				softLast = ev
			}
		}
		res3, err := s.Append(ctx, "soft", es.Any)
		require.NoError(t, err)
		assert.Equal(t, es.AppendResult{Revision: 2, Position: softLast.Position}, res3)

		// Idempotency: a retained event is recognised; scavenged ones are
		// not: an exact revision reports a conflict, any writes them again.
		var cpLast es.EventData
		for ev, err := range s.ReadStream(ctx, "cp", es.ReadStreamOptions{}) {
			require.NoError(t, err)
			cpLast = es.EventData{ID: ev.ID, Type: ev.Type}
		}
		res4, err := s.Append(ctx, "cp", es.Any, cpLast)
		require.NoError(t, err)
		assert.Equal(t, res1, res4, "idempotent re-append of a retained event")
		var mcOld, tbOld []es.EventData
		for _, ev := range before {
			switch {
			case ev.Stream == "mc" && ev.Revision >= 1 && ev.Revision <= 2:
				mcOld = append(mcOld, es.EventData{ID: ev.ID, Type: ev.Type})
			case ev.Stream == "tb" && ev.Revision == 0:
				tbOld = append(tbOld, es.EventData{ID: ev.ID, Type: ev.Type})
			}
		}
		_, err = s.Append(ctx, "mc", es.Exact(0), mcOld...)
		require.ErrorIs(t, err, es.ErrWrongExpectedVersion, "re-append of scavenged events with an exact revision")
		res5, err := s.Append(ctx, "tb", es.Any, tbOld...)
		require.NoError(t, err)
		assert.EqualValues(t, 5, res5.Revision, "re-append of a scavenged event with any: written again")

		// Un-truncating shows only what was not scavenged.
		_, err = es.SetStreamMetadata(ctx, s, "mc", es.Any, es.StreamMetadata{})
		require.NoError(t, err)
		var revs []uint64
		for ev, err := range s.ReadStream(ctx, "mc", es.ReadStreamOptions{}) {
			require.NoError(t, err)
			revs = append(revs, ev.Revision)
		}
		assert.Equal(t, []uint64{3, 4, 5}, revs)

		// Another Store on the same database sees the same.
		assert.Equal(t, positions(allEvents(t, s)), positions(allEvents(t, open(t))))
	})
}

func TestScavengeNothingBelowStart(t *testing.T) {
	s := openSQLite(t)
	_, err := es.SetStreamMetadata(t.Context(), s, "cp", es.NoStream, es.StreamMetadata{MaxCount: 1})
	require.NoError(t, err)
	for range 3 {
		_, err := s.Append(t.Context(), "cp", es.Any, es.EventData{Type: "E"})
		require.NoError(t, err)
	}
	for _, below := range []es.Position{es.Start, {Commit: 1, Prepare: 1}, {Commit: 2, Prepare: 2}} {
		res, err := s.Scavenge(t.Context(), below)
		require.NoError(t, err)
		assert.Zero(t, res.Deleted, "below %v", below)
	}
	res, err := s.Scavenge(t.Context(), es.Position{Commit: 3, Prepare: 3})
	require.NoError(t, err)
	assert.EqualValues(t, 1, res.Deleted, "position 2 (revision 0 of cp) goes, 3 stays")
	assert.Equal(t, map[uint64]bool{1: true, 3: true, 4: true}, positions(allEvents(t, s)))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.Scavenge(ctx, es.End)
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, s.Close())
	_, err = s.Scavenge(t.Context(), es.End)
	require.ErrorIs(t, err, sqlstore.ErrClosed)
}

// TestScavengeTombstoneBehind: a stream subscription that is behind when
// its stream is tombstoned and scavenged still receives the tombstone.
func TestScavengeTombstoneBehind(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := openSQLite(t)
	for range 3 {
		_, err := s.Append(ctx, "tomb", es.Any, es.EventData{Type: "E"})
		require.NoError(t, err)
	}
	next, stop := iter.Pull2(s.SubscribeStream(ctx, "tomb", es.SubscribeStreamOptions{}))
	defer stop()
	for {
		msg, err, ok := next()
		require.True(t, ok)
		require.NoError(t, err)
		if msg.Kind == es.KindCaughtUp {
			break
		}
	}
	// The subscription is paused: these events are never delivered.
	for range 3 {
		_, err := s.Append(ctx, "tomb", es.Any, es.EventData{Type: "E"})
		require.NoError(t, err)
	}
	_, err := s.TombstoneStream(ctx, "tomb", es.Any)
	require.NoError(t, err)
	res, err := s.Scavenge(ctx, es.End)
	require.NoError(t, err)
	require.EqualValues(t, 6, res.Deleted)

	msg, err, ok := next()
	require.True(t, ok)
	require.NoError(t, err)
	assert.Equal(t, es.EventTypeStreamDeleted, msg.Event.Type)
	_, err, ok = next()
	require.True(t, ok)
	require.ErrorIs(t, err, es.ErrStreamDeleted)
}

// TestScavengeBehindSubscription: a `$all` subscription whose checkpoint
// is the horizon receives every event after it, whether it goes on or
// starts again from its checkpoint.
func TestScavengeBehindSubscription(t *testing.T) {
	forEachDB(t, func(t *testing.T, open opener) {
		ctx := t.Context()
		s := open(t)
		_, err := es.SetStreamMetadata(ctx, s, "cp", es.NoStream, es.StreamMetadata{MaxCount: 1})
		require.NoError(t, err)
		for i := range 12 { // more than one batch of a subscription
			evs := make([]es.EventData, 50)
			for j := range evs {
				evs[j] = es.EventData{Type: "E", Data: fmt.Appendf(nil, "%d", 50*i+j)}
			}
			_, err := s.Append(ctx, "cp", es.Any, evs...)
			require.NoError(t, err)
		}
		before := allEvents(t, s)
		sub := start(t, func(ctx context.Context) iter.Seq2[es.Message, error] {
			return s.SubscribeAll(ctx, es.SubscribeAllOptions{})
		})
		var checkpoint es.Position
		for range 100 {
			checkpoint = sub.Next(t).Position
		}
		res, err := s.Scavenge(ctx, checkpoint)
		require.NoError(t, err)
		assert.EqualValues(t, 98, res.Deleted, "revisions 0 to 97 of cp, at positions 2 to 99")

		var want []uuid.UUID
		for _, ev := range before {
			if ev.Position.Compare(checkpoint) > 0 {
				want = append(want, ev.ID)
			}
		}
		got := make([]uuid.UUID, len(want))
		for i := range got {
			got[i] = sub.Next(t).ID
		}
		assert.Equal(t, want, got, "the subscription goes on")

		again := start(t, func(ctx context.Context) iter.Seq2[es.Message, error] {
			return s.SubscribeAll(ctx, es.SubscribeAllOptions{From: checkpoint})
		})
		for i := range got {
			got[i] = again.Next(t).ID
		}
		assert.Equal(t, want, got, "a subscription from the checkpoint")
	})
}

// TestScavengeConcurrentAppends races writers against a scavenger whose
// horizon is the position of a `$all` subscriber, on Stores of their own.
// The subscriber must see every event exactly once, in order, and the
// streams must keep every revision.
func TestScavengeConcurrentAppends(t *testing.T) {
	forEachDB(t, func(t *testing.T, open opener) {
		const writers, appends = 4, 40
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		w, r, sc := open(t), open(t), open(t, sqlstore.WithScavengeBatch(5, 2, 3))
		for i := range writers {
			_, err := es.SetStreamMetadata(ctx, w, fmt.Sprintf("race-%d", i), es.NoStream, es.StreamMetadata{MaxCount: 2})
			require.NoError(t, err)
		}

		var reached atomic.Uint64 // the subscriber's checkpoint
		type seen struct {
			ids []uuid.UUID
			err error
		}
		result := make(chan seen, 1)
		go func() {
			var got seen
			defer func() { result <- got }()
			for msg, err := range r.SubscribeAll(ctx, es.SubscribeAllOptions{}) {
				if err != nil {
					got.err = err
					return
				}
				if msg.Kind != es.KindEvent {
					continue
				}
				if msg.Position.Commit <= reached.Load() {
					got.err = fmt.Errorf("position %v after %d", msg.Position, reached.Load())
					return
				}
				reached.Store(msg.Position.Commit)
				got.ids = append(got.ids, msg.Event.ID)
				if msg.Event.Type == "Done" {
					return
				}
			}
		}()

		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			written []uuid.UUID
		)
		// The scavenger is stopped between scavenges, so that it counts
		// exactly what it deleted.
		var stop atomic.Bool
		scavenged := make(chan int64, 1)
		go func() {
			var n int64
			defer func() { scavenged <- n }()
			for !stop.Load() {
				p := reached.Load()
				res, err := sc.Scavenge(ctx, es.Position{Commit: p, Prepare: p})
				if !assert.NoError(t, err) {
					return
				}
				n += res.Deleted
			}
		}()
		for i := range writers {
			wg.Go(func() {
				for j := range appends {
					id := uuid.New()
					_, err := w.Append(ctx, fmt.Sprintf("race-%d", i), es.Any, es.EventData{ID: id, Type: "E", Data: fmt.Appendf(nil, "%d", j)})
					if !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					written = append(written, id)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		done := uuid.New()
		_, err := w.Append(ctx, "race-done", es.NoStream, es.EventData{ID: done, Type: "Done"})
		require.NoError(t, err)
		var got seen
		select {
		case got = <-result:
		case <-ctx.Done():
			t.Fatal("the subscriber did not see every event in time")
		}
		stop.Store(true)
		n := <-scavenged
		require.NoError(t, got.err)
		t.Logf("scavenged %d events while appending", n)

		// Every event once: the metadata events, then the appended ones
		// in the order of the log.
		assert.Len(t, got.ids, writers+len(written)+1)
		assert.ElementsMatch(t, written, got.ids[writers:len(got.ids)-1])
		assert.Equal(t, done, got.ids[len(got.ids)-1])

		res, err := sc.Scavenge(ctx, es.End)
		require.NoError(t, err)
		for i := range writers {
			var revs []uint64
			for ev, err := range r.ReadStream(ctx, fmt.Sprintf("race-%d", i), es.ReadStreamOptions{}) {
				require.NoError(t, err)
				revs = append(revs, ev.Revision)
			}
			assert.Equal(t, []uint64{appends - 2, appends - 1}, revs, "race-%d", i)
		}
		assert.Len(t, allEvents(t, r), writers*3+1, "left: two events per stream, the metadata, Done")
		assert.EqualValues(t, writers*(appends-2), n+res.Deleted, "deleted in all")
	})
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestWithScavenge: the background scavenger runs, logs a failing horizon
// and tries again, and stops on Close (goleak checks it in TestMain).
func TestWithScavenge(t *testing.T) {
	forEachDB(t, func(t *testing.T, open opener) {
		var (
			logs  syncBuffer
			calls atomic.Int64
		)
		horizon := func(ctx context.Context) (es.Position, error) {
			if calls.Add(1) == 1 {
				return es.Position{}, fmt.Errorf("checkpoints unavailable")
			}
			return es.End, nil
		}
		s := open(t, sqlstore.WithScavenge(5*time.Millisecond, horizon),
			sqlstore.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
		_, err := es.SetStreamMetadata(t.Context(), s, "cp", es.NoStream, es.StreamMetadata{MaxCount: 1})
		require.NoError(t, err)
		for range 10 {
			_, err := s.Append(t.Context(), "cp", es.Any, es.EventData{Type: "E"})
			require.NoError(t, err)
		}
		for deadline := time.Now().Add(10 * time.Second); len(allEvents(t, s)) != 2; time.Sleep(5 * time.Millisecond) {
			require.True(t, time.Now().Before(deadline), "the scavenger did not leave the metadata event and the last checkpoint within 10 s")
		}
		require.NoError(t, s.Close())
		n := calls.Load()
		assert.GreaterOrEqual(t, n, int64(2))
		assert.Contains(t, logs.String(), "checkpoints unavailable")
		assert.Contains(t, logs.String(), "sqlstore: scavenged")
		// Close waited for the goroutine: the horizon is not called again.
		assert.Equal(t, n, calls.Load())
	})
}

func TestWithScavengeInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	horizon := func(context.Context) (es.Position, error) { return es.End, nil }
	for _, opt := range []sqlstore.Option{sqlstore.WithScavenge(0, horizon), sqlstore.WithScavenge(time.Second, nil)} {
		_, err := sqlite.Open(t.Context(), path, opt)
		require.ErrorIs(t, err, sqlstore.ErrInvalidOption)
	}
}

// BenchmarkScavenge measures the deletion of the events that `$maxCount` 1
// hides in a stream of 10,000 events: ns/op is the time of one Scavenge,
// ns/event per event deleted, append-max the slowest append made meanwhile
// by another goroutine, and baseline-append-max the slowest append in 100
// ms without a scavenge.
func BenchmarkScavenge(b *testing.B) {
	const events = 10000
	run := func(b *testing.B, s *sqlstore.Store) {
		ctx := b.Context()
		_, err := es.SetStreamMetadata(ctx, s, "cp", es.Any, es.StreamMetadata{MaxCount: 1})
		require.NoError(b, err)
		var deleted int64
		var slowest, baseline time.Duration
		for b.Loop() {
			b.StopTimer()
			for range events / 500 {
				evs := make([]es.EventData, 500)
				for j := range evs {
					evs[j] = es.EventData{Type: "Checkpoint", Data: []byte(`{"position":"C:123456/P:123456"}`)}
				}
				_, err := s.Append(ctx, "cp", es.Any, evs...)
				require.NoError(b, err)
			}
			// The baseline: appends for 100 ms without a scavenge.
			stop, appended := appendLoop(ctx, s)
			time.Sleep(100 * time.Millisecond)
			close(stop)
			baseline = maxDuration(baseline, <-appended)

			stop, appended = appendLoop(ctx, s)
			b.StartTimer()
			res, err := s.Scavenge(ctx, es.End)
			b.StopTimer()
			close(stop)
			slowest = maxDuration(slowest, <-appended)
			require.NoError(b, err)
			deleted += res.Deleted
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(deleted), "ns/event")
		b.ReportMetric(float64(slowest.Microseconds())/1000, "append-max-ms")
		b.ReportMetric(float64(baseline.Microseconds())/1000, "baseline-append-max-ms")
	}
	b.Run("SQLite", func(b *testing.B) {
		s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "events.db"))
		require.NoError(b, err)
		defer s.Close()
		run(b, s)
	})
	b.Run("Postgres", func(b *testing.B) {
		url := postgresURL(b)
		schema := newSchema(b, url)
		s, err := postgres.Open(b.Context(), url, sqlstore.WithSchema(schema))
		require.NoError(b, err)
		defer s.Close()
		run(b, s)
	})
}

// appendLoop appends to a stream of its own until stop is closed, then
// sends the longest time an append took.
func appendLoop(ctx context.Context, s *sqlstore.Store) (chan<- struct{}, <-chan time.Duration) {
	stop := make(chan struct{})
	appended := make(chan time.Duration, 1)
	go func() {
		var slowest time.Duration
		defer func() { appended <- slowest }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if _, err := s.Append(ctx, "other", es.Any, es.EventData{Type: "E"}); err != nil {
				return
			}
			slowest = maxDuration(slowest, time.Since(t0))
		}
	}()
	return stop, appended
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// TestScavengeRelayCheckpoints is finding 9 of issue 10: a relay-like
// runner whose checkpoints live in the store (projection.StreamCheckpoints,
// `$maxCount` 1, an event per batch) on a store that scavenges in the
// background below the runner's checkpoint. Its checkpoint stream stays
// small, and the runner receives every event.
func TestScavengeRelayCheckpoints(t *testing.T) {
	forEachDB(t, func(t *testing.T, open opener) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		var runner atomic.Pointer[projection.Runner[projection.NoTx]]
		horizon := func(ctx context.Context) (es.Position, error) {
			r := runner.Load()
			if r == nil {
				return es.Start, nil // not yet known: nothing may go
			}
			st, err := r.Status(ctx)
			return st.Checkpoint, err
		}
		s := open(t, sqlstore.WithScavenge(5*time.Millisecond, horizon))
		var (
			mu      sync.Mutex
			handled []uuid.UUID
		)
		cps, err := projection.NewStreamCheckpoints(s)
		require.NoError(t, err)
		r, err := projection.NewRunner(s, cps, nil, projection.Projection[projection.NoTx]{
			Name:       "relay",
			Categories: []string{"order"},
			Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
				mu.Lock()
				defer mu.Unlock()
				for _, ev := range b.Recorded() {
					handled = append(handled, ev.ID)
				}
				return nil
			},
		}, projection.WithBatch(1, time.Millisecond))
		require.NoError(t, err)
		runner.Store(r)
		runCtx, stop := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- r.Run(runCtx) }()
		defer func() {
			stop()
			<-ran
		}()

		// A checkpoint event is written per batch (per order here). Those
		// after the runner's checkpoint stay until a checkpoint of the
		// filtered subscription (every 32 events scanned, see es.Filter)
		// moves it on: the stream stays bounded instead of growing by one
		// event per batch.
		const orders, bound = 120, 40
		var appended []uuid.UUID
		for i := range orders {
			id := uuid.New()
			_, err := s.Append(ctx, fmt.Sprintf("order-%d", i), es.NoStream, es.EventData{ID: id, Type: "OrderPlaced"})
			require.NoError(t, err)
			appended = append(appended, id)
		}
		for {
			checkpoints := 0
			for _, ev := range allEvents(t, s) {
				if strings.HasPrefix(ev.Stream, projection.CheckpointStreamPrefix) {
					checkpoints++
				}
			}
			mu.Lock()
			n := len(handled)
			mu.Unlock()
			if n == len(appended) && checkpoints <= bound {
				t.Logf("%d checkpoint events stored", checkpoints)
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("after a minute: %d events handled of %d, %d checkpoint events stored", n, len(appended), checkpoints)
			case <-time.After(5 * time.Millisecond):
			}
		}
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, appended, handled)
	})
}
