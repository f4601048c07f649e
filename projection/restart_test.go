package projection_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// failingStore fails the first failures `$all` subscriptions it opens.
type failingStore struct {
	es.Store
	failures atomic.Int32
}

var errOutage = errors.New("the server is away")

func (s *failingStore) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	if s.failures.Add(-1) >= 0 {
		return func(yield func(es.Message, error) bool) { yield(es.Message{}, errOutage) }
	}
	return s.Store.SubscribeAll(ctx, opts)
}

func TestRestart(t *testing.T) {
	t.Run("a failed subscription restarts with backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := &failingStore{Store: memstore.MustNew()}
			store.failures.Store(3)
			_, err := store.Append(t.Context(), "counter-1", es.NoStream, es.EventData{Type: "Added", Data: []byte(`{"n":1}`)})
			require.NoError(t, err)
			var applied atomic.Int64
			r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
				Name: "counted",
				Handle: func(_ context.Context, _ projection.NoTx, b projection.Batch) error {
					applied.Add(int64(len(b.Events)))
					return nil
				},
			}, projection.WithRestart(time.Second, 10*time.Second), projection.WithLogger(discard()))
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- r.Run(ctx) }()

			synctest.Wait()
			st, err := r.Status(t.Context())
			require.NoError(t, err)
			assert.Equal(t, projection.StateRestarting, st.State)
			require.ErrorIs(t, st.Err, errOutage)
			assert.Equal(t, 1, st.Restarts)

			// WaitFor waits for a restarting runner, and returns once it
			// caught up.
			require.NoError(t, r.WaitFor(t.Context(), es.Position{Commit: 1, Prepare: 1}))
			// Three failures: waits of about 1, 2 and 4 s (half to all of
			// each, with jitter).
			assert.GreaterOrEqual(t, time.Since(start), 3500*time.Millisecond)
			assert.LessOrEqual(t, time.Since(start), 7*time.Second)
			synctest.Wait() // the runner goes live just after its commit
			st, err = r.Status(t.Context())
			require.NoError(t, err)
			assert.Equal(t, projection.StateLive, st.State)
			assert.NoError(t, st.Err)
			assert.Equal(t, 3, st.Restarts)
			assert.EqualValues(t, 1, applied.Load())

			cancel()
			require.NoError(t, <-done, "a graceful stop")
		})
	})

	t.Run("stopped while waiting to restart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := &failingStore{Store: memstore.MustNew()}
			store.failures.Store(100)
			r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
				Name:   "counted",
				Handle: func(context.Context, projection.NoTx, projection.Batch) error { return nil },
			}, projection.WithRestart(time.Minute, time.Hour), projection.WithLogger(discard()))
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			synctest.Wait()
			cancel()
			require.NoError(t, <-done)
			st, err := r.Status(t.Context())
			require.NoError(t, err)
			assert.Equal(t, projection.StateStopped, st.State)
		})
	})

	t.Run("a poison event still stops the runner", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := memstore.MustNew()
			_, err := store.Append(t.Context(), "counter-1", es.NoStream, es.EventData{Type: "Added", Data: []byte(`{"n":1}`)})
			require.NoError(t, err)
			r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
				Name:   "poisoned",
				Handle: func(context.Context, projection.NoTx, projection.Batch) error { return errors.New("cannot apply") },
			}, projection.WithRestart(time.Second, time.Minute), projection.WithRetry(1, 0), projection.WithLogger(discard()))
			require.NoError(t, err)
			err = r.Run(t.Context())
			require.ErrorIs(t, err, projection.ErrPoisonEvent)
			st, serr := r.Status(t.Context())
			require.NoError(t, serr)
			assert.Equal(t, projection.StateFailed, st.State)
			assert.Zero(t, st.Restarts)
		})
	})

	t.Run("invalid", func(t *testing.T) {
		for _, o := range []projection.Option{projection.WithRestart(0, time.Second), projection.WithRestart(time.Second, time.Millisecond)} {
			_, err := projection.NewRunner(memstore.MustNew(), new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
				Name: "x", Handle: func(context.Context, projection.NoTx, projection.Batch) error { return nil },
			}, o)
			require.ErrorIs(t, err, projection.ErrInvalidProjection)
		}
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestLag(t *testing.T) {
	t.Run("in time: the last applied event against the head", func(t *testing.T) {
		now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		store := memstore.MustNew(memstore.WithClock(func() time.Time { return now }))
		cps := new(projection.MemoryCheckpoints)
		p := projection.Projection[projection.NoTx]{
			Name:   "lagging",
			Handle: func(context.Context, projection.NoTx, projection.Batch) error { return nil },
		}
		r, err := projection.NewRunner(store, cps, nil, p)
		require.NoError(t, err)
		first, err := store.Append(t.Context(), "s-1", es.NoStream, es.EventData{Type: "A"})
		require.NoError(t, err)
		require.NoError(t, r.CatchUp(t.Context()))
		now = now.Add(time.Minute)
		_, err = store.Append(t.Context(), "s-1", es.Any, es.EventData{Type: "A"})
		require.NoError(t, err)
		now = now.Add(time.Minute)
		_, err = store.Append(t.Context(), "s-1", es.Any, es.EventData{Type: "A"})
		require.NoError(t, err)

		lag, err := r.Lag(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 2, lag.Events)
		assert.Equal(t, 2*time.Minute, lag.Time, "the event at the checkpoint (%v) is two minutes older than the head", first.Position)
	})
	t.Run("a checkpoint beyond the head", func(t *testing.T) {
		store := memstore.MustNew()
		_, err := store.Append(t.Context(), "s-1", es.NoStream, es.EventData{Type: "A"})
		require.NoError(t, err)
		cps := new(projection.MemoryCheckpoints)
		require.NoError(t, cps.Commit(t.Context(), "elsewhere/v1", projection.Checkpoint{Position: es.Position{Commit: 99, Prepare: 99}}, nil))
		r, err := projection.NewRunner(store, cps, nil, projection.Projection[projection.NoTx]{
			Name:   "elsewhere",
			Handle: func(context.Context, projection.NoTx, projection.Batch) error { return nil },
		})
		require.NoError(t, err)
		lag, err := r.Lag(t.Context())
		require.ErrorIs(t, err, projection.ErrCheckpointBeyondHead)
		assert.Equal(t, uint64(1), lag.Head.Commit)
	})
}

// failingCheckpoints fails every commit while down is set, and the first
// failures commits that apply events.
type failingCheckpoints struct {
	projection.MemoryCheckpoints
	down     atomic.Bool
	failures atomic.Int32
}

var errDatabaseAway = errors.New("connection refused")

func (c *failingCheckpoints) Commit(ctx context.Context, key string, cp projection.Checkpoint, apply func(projection.NoTx) error) error {
	if c.down.Load() || (apply != nil && c.failures.Add(-1) >= 0) {
		return errDatabaseAway
	}
	return c.MemoryCheckpoints.Commit(ctx, key, cp, apply)
}

func TestFailuresThatNoEventIsToBlameFor(t *testing.T) {
	appendOne := func(t *testing.T, store es.Store) {
		_, err := store.Append(t.Context(), "counter-1", es.Any, es.EventData{Type: "Added", Data: []byte(`{"n":1}`)})
		require.NoError(t, err)
	}
	t.Run("a handler's error wrapping ErrUnavailable fails the runner and poisons nothing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := memstore.MustNew()
			appendOne(t, store)
			appendOne(t, store)
			var away atomic.Bool
			away.Store(true)
			var calls atomic.Int32
			dead := new(projection.MemoryCheckpoints)
			r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
				Name: "relay",
				Handle: func(_ context.Context, _ projection.NoTx, b projection.Batch) error {
					calls.Add(1)
					if away.Load() {
						return fmt.Errorf("publish: %w: nats: no servers available", projection.ErrUnavailable)
					}
					return nil
				},
			}, projection.WithRetry(3, time.Second), projection.WithSkipPoison(dead),
				projection.WithRestart(time.Second, time.Second), projection.WithLogger(discard()))
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()

			// Three tries, about 1 s and 2 s apart (fake time), then the
			// failure and a restart 1 s later.
			var st projection.Status
			for st.State != projection.StateRestarting {
				time.Sleep(100 * time.Millisecond)
				st, err = r.Status(t.Context())
				require.NoError(t, err)
			}
			require.ErrorIs(t, st.Err, projection.ErrUnavailable)
			assert.NotErrorIs(t, st.Err, projection.ErrPoisonEvent)
			assert.EqualValues(t, 3, calls.Load(), "the batch was retried, then not taken apart event by event")

			away.Store(false)
			require.NoError(t, r.WaitFor(t.Context(), es.Position{Commit: 2, Prepare: 2}))
			letters, err := dead.DeadLetters(t.Context(), "relay")
			require.NoError(t, err)
			assert.Empty(t, letters)
			cancel()
			require.NoError(t, <-done)
		})
	})
	t.Run("a checkpoint store that cannot commit at all poisons nothing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := memstore.MustNew()
			appendOne(t, store)
			cps := new(failingCheckpoints)
			dead := new(projection.MemoryCheckpoints)
			var applied atomic.Int64
			r, err := projection.NewRunner(store, cps, nil, projection.Projection[projection.NoTx]{
				Name: "counted",
				Handle: func(_ context.Context, _ projection.NoTx, b projection.Batch) error {
					applied.Add(int64(len(b.Events)))
					return nil
				},
			}, projection.WithRetry(2, time.Second), projection.WithSkipPoison(dead), projection.WithLogger(discard()))
			require.NoError(t, err)
			require.NoError(t, r.CatchUp(t.Context()))
			cps.down.Store(true)
			appendOne(t, store)
			err = r.CatchUp(t.Context())
			require.ErrorIs(t, err, projection.ErrUnavailable)
			require.ErrorIs(t, err, errDatabaseAway)
			assert.NotErrorIs(t, err, projection.ErrPoisonEvent)
			letters, err := dead.DeadLetters(t.Context(), "counted")
			require.NoError(t, err)
			assert.Empty(t, letters, "no event is blamed for the database's outage")

			cps.down.Store(false)
			require.NoError(t, r.CatchUp(t.Context()))
			cp, err := cps.Load(t.Context(), "counted/v1")
			require.NoError(t, err)
			assert.Equal(t, es.Position{Commit: 2, Prepare: 2}, cp.Position)
		})
	})
}

// A rebuild in place that cannot read the log (a damaged database, a
// server away) leaves the read model as it was: the reset is committed
// with the first events, not before them.
func TestRebuildThatCannotReadTheLogKeepsTheReadModel(t *testing.T) {
	ctx := t.Context()
	store := &failingStore{Store: memstore.MustNew()}
	for range 3 {
		_, err := store.Append(ctx, "counter-1", es.Any, es.EventData{Type: "Added", Data: []byte(`{"n":1}`)})
		require.NoError(t, err)
	}
	model := map[es.Position]bool{}
	cps := new(projection.MemoryCheckpoints)
	r, err := projection.NewRunner(store, cps, nil, projection.Projection[projection.NoTx]{
		Name: "counted",
		Handle: func(_ context.Context, _ projection.NoTx, b projection.Batch) error {
			for _, ev := range b.Events {
				model[ev.Position] = true
			}
			return nil
		},
		Reset: func(context.Context, projection.NoTx, int) error {
			clear(model)
			return nil
		},
	}, projection.WithLogger(discard()))
	require.NoError(t, err)
	require.NoError(t, r.CatchUp(ctx))
	require.Len(t, model, 3)
	before, err := cps.Load(ctx, "counted/v1")
	require.NoError(t, err)

	store.failures.Store(1)
	require.ErrorIs(t, r.Rebuild(ctx, nil), errOutage)
	assert.Len(t, model, 3, "the read model is untouched")
	after, err := cps.Load(ctx, "counted/v1")
	require.NoError(t, err)
	assert.Equal(t, before, after, "and so is its checkpoint: no rebuild is under way")

	require.NoError(t, r.Rebuild(ctx, nil))
	assert.Len(t, model, 3)
	after, err = cps.Load(ctx, "counted/v1")
	require.NoError(t, err)
	assert.Equal(t, projection.Checkpoint{Position: before.Position}, after)
}

// The database comes back after the last retry of an event and before the
// runner checks that it commits at all: the event is tried once more, and
// is not taken for poison.
func TestStoreBackJustBeforeBlamingAnEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memstore.MustNew()
		_, err := store.Append(t.Context(), "counter-1", es.NoStream, es.EventData{Type: "Added", Data: []byte(`{"n":1}`)})
		require.NoError(t, err)
		cps := new(failingCheckpoints)
		cps.failures.Store(4) // the batch's two tries and the event's two
		dead := new(projection.MemoryCheckpoints)
		var applied atomic.Int64
		r, err := projection.NewRunner(store, cps, nil, projection.Projection[projection.NoTx]{
			Name: "counted",
			Handle: func(_ context.Context, _ projection.NoTx, b projection.Batch) error {
				applied.Add(int64(len(b.Events)))
				return nil
			},
		}, projection.WithRetry(2, time.Second), projection.WithSkipPoison(dead), projection.WithLogger(discard()))
		require.NoError(t, err)
		require.NoError(t, r.CatchUp(t.Context()))
		letters, err := dead.DeadLetters(t.Context(), "counted")
		require.NoError(t, err)
		assert.Empty(t, letters)
		assert.EqualValues(t, 1, applied.Load(), "applied by the try after the check")
		cp, err := cps.Load(t.Context(), "counted/v1")
		require.NoError(t, err)
		assert.Equal(t, es.Position{Commit: 1, Prepare: 1}, cp.Position)
	})
}
