package sqlstore_test

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/internal/faultproxy"
)

// openBehindProxy opens a PostgreSQL store in a schema of the test's own,
// through a faultproxy, with a call timeout of timeout.
func openBehindProxy(t *testing.T, timeout time.Duration) (*sqlstore.Store, *faultproxy.Proxy) {
	t.Helper()
	rawURL := postgresURL(t)
	schema := newSchema(t, rawURL)
	p, proxied := throughProxy(t, rawURL)
	store, err := postgres.Open(t.Context(), proxied, sqlstore.WithSchema(schema), sqlstore.WithCallTimeout(timeout),
		sqlstore.WithPollInterval(50*time.Millisecond), sqlstore.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	return store, p
}

// firstError returns the first error of seq, or nil if it ends without
// one.
func firstError[T any](seq iter.Seq2[T, error]) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestPostgresStall stalls the connections to PostgreSQL (they stay open,
// bytes vanish: only deadlines end what waits for an answer) under a store
// whose call timeout is 1s. Appends, reads and new subscriptions fail with
// es.ErrUnavailable within about the timeout, where they used to hang for
// as long as TCP takes; a caller's own deadline still reports the
// context's error. Once the network is back, the same Store appends and
// reads again, and a subscription that waited through the stall receives
// what is appended after it.
func TestPostgresStall(t *testing.T) {
	const timeout = time.Second
	store, p := openBehindProxy(t, timeout)
	ctx := t.Context()
	_, err := store.Append(ctx, "stall-1", es.NoStream, es.EventData{Type: "Before"})
	require.NoError(t, err)
	live := start(t, func(ctx context.Context) iter.Seq2[es.Message, error] {
		return store.SubscribeAll(ctx, es.SubscribeAllOptions{})
	})
	assert.Equal(t, "Before", live.Next(t).Type)

	p.Stall()
	// within fails the test unless err wraps es.ErrUnavailable and came
	// within the timeout and some slack for a loaded machine.
	within := func(what string, started time.Time, err error) {
		t.Helper()
		took := time.Since(started)
		require.ErrorIs(t, err, es.ErrUnavailable, what)
		assert.GreaterOrEqual(t, took, timeout/2, "%s: failed before the timeout: %v", what, err)
		assert.Less(t, took, timeout+time.Second, "%s: failed in time", what)
		t.Logf("%s: %v after %v", what, err, took.Round(time.Millisecond))
	}
	started := time.Now()
	_, err = store.Append(ctx, "stall-1", es.Exact(0), es.EventData{Type: "Stalled"})
	within("Append", started, err)

	started = time.Now()
	within("ReadStream", started, firstError(store.ReadStream(ctx, "stall-1", es.ReadStreamOptions{})))
	started = time.Now()
	within("ReadAll", started, firstError(store.ReadAll(ctx, es.ReadAllOptions{})))
	started = time.Now()
	within("SubscribeAll", started, firstError(store.SubscribeAll(ctx, es.SubscribeAllOptions{})))
	started = time.Now()
	within("SubscribeStream", started, firstError(store.SubscribeStream(ctx, "stall-1", es.SubscribeStreamOptions{})))
	started = time.Now()
	_, err = store.Scavenge(ctx, es.End)
	within("Scavenge", started, err)

	// The caller's own deadline, before the call timeout: its error.
	short, cancel := context.WithTimeout(ctx, timeout/5)
	defer cancel()
	_, err = store.Append(short, "stall-1", es.Exact(0), es.EventData{Type: "Short"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, es.ErrUnavailable, "the caller's deadline passed, not the store's")
	err = firstError(store.ReadStream(short, "stall-1", es.ReadStreamOptions{}))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, es.ErrUnavailable)

	// Writes queue behind a stalled one: each caller's wait is bounded,
	// not the sum of the waits of those before it.
	results := make(chan time.Duration, 4)
	for i := range cap(results) {
		go func() {
			started := time.Now()
			_, err := store.Append(ctx, "stall-queue", es.Any, es.EventData{Type: "Queued"})
			if !errors.Is(err, es.ErrUnavailable) {
				t.Errorf("append %d: %v, want es.ErrUnavailable", i, err)
			}
			results <- time.Since(started)
		}()
	}
	for range cap(results) {
		assert.Less(t, receive(t, results), timeout+time.Second, "a queued append fails in time")
	}

	p.Restore()
	_, err = store.Append(ctx, "stall-1", es.Exact(0), es.EventData{Type: "After"})
	require.NoError(t, err, "the same store appends once the network is back")
	var types []string
	for ev, err := range store.ReadStream(ctx, "stall-1", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		types = append(types, ev.Type)
	}
	assert.Equal(t, []string{"Before", "After"}, types, "nothing of the stalled appends was written")
	assert.Equal(t, "After", live.Next(t).Type, "the subscription that waited through the stall goes on")
}

// TestPostgresAppendAfterReset resets the connections to PostgreSQL (as a
// restarted server or a pg_terminate_backend does) while the store is
// idle: the next append fails on the connection that the writer kept, and
// the writer runs it again on a new connection, so that it succeeds.
func TestPostgresAppendAfterReset(t *testing.T) {
	store, p := openBehindProxy(t, 5*time.Second)
	ctx := t.Context()
	for i := range 3 {
		_, err := store.Append(ctx, "reset-1", es.Any, es.EventData{Type: "Before"})
		require.NoError(t, err)
		dialed := p.Dialed()
		p.Reset()
		res, err := store.Append(ctx, "reset-1", es.Any, es.EventData{Type: "After"})
		require.NoError(t, err, "reset %d: the append is run again on a new connection", i+1)
		assert.Equal(t, uint64(2*i+1), res.Revision)
		assert.Greater(t, p.Dialed(), dialed, "a new connection")
	}
}

// TestPostgresCut cuts the connections to PostgreSQL: appends and reads
// fail at once with es.ErrUnavailable (connections refused), and work again
// once the network is back.
func TestPostgresCut(t *testing.T) {
	store, p := openBehindProxy(t, 5*time.Second)
	ctx := t.Context()
	_, err := store.Append(ctx, "cut-1", es.NoStream, es.EventData{Type: "Before"})
	require.NoError(t, err)
	p.Cut()
	started := time.Now()
	_, err = store.Append(ctx, "cut-1", es.Exact(0), es.EventData{Type: "Cut"})
	require.ErrorIs(t, err, es.ErrUnavailable)
	require.ErrorIs(t, firstError(store.ReadStream(ctx, "cut-1", es.ReadStreamOptions{})), es.ErrUnavailable)
	assert.Less(t, time.Since(started), 2*time.Second, "refused at once, not after the call timeout")
	p.Restore()
	_, err = store.Append(ctx, "cut-1", es.Exact(0), es.EventData{Type: "After"})
	require.NoError(t, err)
}

// receive returns the next value of ch, failing the test after 10 s.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received within 10 s")
		var zero T
		return zero
	}
}
