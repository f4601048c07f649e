package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/es/sqlstore"
)

// TestPaging reads and subscribes across the boundaries of the batches in
// which a store fetches events (512 rows), and compares with es/memstore.
func TestPaging(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		testPaging(t, func(clock func() time.Time) es.Store { return openSQLite(t, sqlstore.WithClock(clock)) })
	})
	t.Run("Postgres", func(t *testing.T) {
		postgresURL(t)
		testPaging(t, func(clock func() time.Time) es.Store { return openPostgres(t, sqlstore.WithClock(clock)) })
	})
}

func testPaging(t *testing.T, open func(clock func() time.Time) es.Store) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return at }
	ref, got := memstore.MustNew(memstore.WithClock(clock)), open(clock)
	ctx := t.Context()
	both := func(f func(s es.Store)) { f(ref); f(got) }

	const n = 1300
	evs := make([]es.EventData, n)
	for i := range evs {
		evs[i] = es.EventData{ID: uuid.New(), Type: fmt.Sprintf("T%d", i%3), Data: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	both(func(s es.Store) {
		_, err := s.Append(ctx, "long", es.NoStream, evs[:700]...)
		require.NoError(t, err)
		_, err = s.Append(ctx, "other", es.NoStream, evs[700:900]...)
		require.NoError(t, err)
		_, err = s.Append(ctx, "long", es.Any, evs[900:]...)
		require.NoError(t, err)
	})

	for _, dir := range []es.Direction{es.Forwards, es.Backwards} {
		for _, from := range []uint64{0, 1, 511, 512, 513, 1023, 1024, 1099, es.StreamEnd} {
			for _, limit := range []uint64{0, 1, 511, 512, 513, 1100} {
				opts := es.ReadStreamOptions{Direction: dir, From: from, Limit: limit}
				e1, err1 := collectEvents(ref.ReadStream(ctx, "long", opts))
				e2, err2 := collectEvents(got.ReadStream(ctx, "long", opts))
				requireSameError(t, err1, err2, "ReadStream(%+v)", opts)
				requireSameEvents(t, e1, e2, "ReadStream(%+v)", opts)
			}
		}
		for _, from := range []uint64{0, 1, 512, 513, 700, 1024, 1300, 1301, 5000} {
			for _, limit := range []uint64{0, 1, 512, 513, 2000} {
				opts := es.ReadAllOptions{Direction: dir, From: es.Position{Commit: from, Prepare: from}, Limit: limit}
				e1, err1 := collectEvents(ref.ReadAll(ctx, opts))
				e2, err2 := collectEvents(got.ReadAll(ctx, opts))
				requireSameError(t, err1, err2, "ReadAll(%+v)", opts)
				requireSameEvents(t, e1, e2, "ReadAll(%+v)", opts)
			}
		}
	}

	// $maxCount cuts the stream in the middle of a batch.
	both(func(s es.Store) {
		_, err := es.SetStreamMetadata(ctx, s, "long", es.Any, es.StreamMetadata{MaxCount: 600})
		require.NoError(t, err)
	})
	for _, opts := range []es.ReadStreamOptions{{}, {From: 100, Limit: 513}, {Direction: es.Backwards, From: es.StreamEnd}, {Direction: es.Backwards, From: 800, Limit: 700}} {
		e1, err1 := collectEvents(ref.ReadStream(ctx, "long", opts))
		e2, err2 := collectEvents(got.ReadStream(ctx, "long", opts))
		requireSameError(t, err1, err2, "ReadStream(%+v) with $maxCount", opts)
		requireSameEvents(t, e1, e2, "ReadStream(%+v) with $maxCount", opts)
	}

	// Subscriptions catch up over several batches, then stop at caught-up.
	catchUp := func(s es.Store, sub func(ctx context.Context) func(func(es.Message, error) bool)) []es.Message {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var msgs []es.Message
		for msg, err := range sub(ctx) {
			require.NoError(t, err)
			if msg.Kind == es.KindCaughtUp {
				return msgs
			}
			msg.Event.ID = uuid.Nil // system events have random IDs
			msg.Event.Data, msg.Event.Created = nil, time.Time{}
			msgs = append(msgs, msg)
		}
		t.Fatal("the subscription ended before caught-up")
		return nil
	}
	for _, opts := range []es.SubscribeAllOptions{
		{},
		{From: es.Position{Commit: 511, Prepare: 511}},
		{Filter: &es.Filter{On: es.FilterEventType, Prefixes: []string{"T1"}, CheckpointInterval: 100}},
		{Filter: &es.Filter{On: es.FilterStreamName, Prefixes: []string{"other"}}},
	} {
		m1 := catchUp(ref, func(ctx context.Context) func(func(es.Message, error) bool) { return ref.SubscribeAll(ctx, opts) })
		m2 := catchUp(got, func(ctx context.Context) func(func(es.Message, error) bool) { return got.SubscribeAll(ctx, opts) })
		requireSameMessages(t, m1, m2, "SubscribeAll(%+v)", opts)
	}
	for _, from := range []es.StreamCursor{es.FromStreamStart, es.AfterRevision(511), es.AfterRevision(1023)} {
		opts := es.SubscribeStreamOptions{From: from}
		m1 := catchUp(ref, func(ctx context.Context) func(func(es.Message, error) bool) {
			return ref.SubscribeStream(ctx, "long", opts)
		})
		m2 := catchUp(got, func(ctx context.Context) func(func(es.Message, error) bool) {
			return got.SubscribeStream(ctx, "long", opts)
		})
		requireSameMessages(t, m1, m2, "SubscribeStream(%v)", from)
	}
}

func requireSameMessages(t *testing.T, want, got []es.Message, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	require.Equalf(t, len(want), len(got), "%s: number of messages", what)
	for i := range want {
		require.Equalf(t, want[i], got[i], "%s: message %d", what, i)
	}
}
