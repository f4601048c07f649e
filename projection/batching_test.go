package projection_test

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hookedStore lets a test steer the `$all` subscriptions of a store: before
// is called with each message before it is delivered (an error ends the
// subscription with it), after once the subscriber has taken it. Either
// may be nil.
type hookedStore struct {
	es.Store
	before func(ctx context.Context, m es.Message) error
	after  func(m es.Message)
}

func (s *hookedStore) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		for m, err := range s.Store.SubscribeAll(ctx, opts) {
			if err == nil && s.before != nil {
				if err := s.before(ctx, m); err != nil {
					yield(es.Message{}, err)
					return
				}
			}
			if !yield(m, err) {
				return
			}
			if err == nil && s.after != nil {
				s.after(m)
			}
		}
	}
}

// waitLive waits until r is live.
func waitLive(t *testing.T, r *projection.Runner[projection.NoTx]) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := r.Status(t.Context())
		return err == nil && st.State == projection.StateLive
	}, 5*time.Second, time.Millisecond)
}

func TestLiveEventsAreCommittedAtOnce(t *testing.T) {
	store := memstore.MustNew()
	m := &totals{}
	// A batch wait of an hour: a live event must not wait for it.
	r := newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"), projection.WithBatch(500, time.Hour))
	start(t, r)
	waitLive(t, r)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		res := add(t, store, "counter-a", i+1)
		require.NoError(t, r.WaitFor(ctx, res.Position), "event %d is applied without waiting for the batch to fill", i)
		st, err := r.Status(ctx)
		require.NoError(t, err)
		assert.Equal(t, projection.StateLive, st.State)
		assert.Equal(t, res.Position, st.Checkpoint)
		assert.Zero(t, st.Pending)
	}
	assert.Equal(t, map[string]int{"counter-a": 6}, m.snapshot())
	m.mu.Lock()
	defer m.mu.Unlock()
	assert.Equal(t, []int{1, 1, 1}, m.batches, "an idle runner commits each event alone")
}

func TestLiveBatchesGrowWithTheLoad(t *testing.T) {
	for _, tc := range []struct {
		size int
		want []int
	}{
		{size: 500, want: []int{1, 3}},     // what arrived during the first commit
		{size: 2, want: []int{1, 2, 1}},    // ... up to the batch size
		{size: 1, want: []int{1, 1, 1, 1}}, // batches of one stay batches of one
	} {
		t.Run(fmt.Sprintf("size=%d", tc.size), func(t *testing.T) {
			taken := make(chan es.Position, 100) // events the subscription handed over
			store := &hookedStore{Store: memstore.MustNew(), after: func(m es.Message) {
				if m.Kind == es.KindEvent {
					taken <- m.Position
				}
			}}
			committing, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			m := &totals{fail: func(projection.Event) error {
				once.Do(func() { close(committing); <-release }) // the first commit takes a while
				return nil
			}}
			r := newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"), projection.WithBatch(tc.size, time.Hour))
			start(t, r)
			waitLive(t, r)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()

			add(t, store, "counter-a", 1)
			<-committing
			var last es.AppendResult
			for _, n := range []int{2, 3, 4} {
				last = add(t, store, "counter-a", n)
			}
			// The three events wait for the runner, read ahead.
			for p := range taken {
				if p == last.Position {
					break
				}
			}
			close(release)
			require.NoError(t, r.WaitFor(ctx, last.Position))
			assert.Equal(t, map[string]int{"counter-a": 10}, m.snapshot())
			m.mu.Lock()
			defer m.mu.Unlock()
			assert.Equal(t, tc.want, m.batches)
		})
	}
}

// TestCatchUpFillsBatches makes the subscription pause every 7 events until
// the runner has taken all it delivered, as a store fetching its next page
// would: a catch-up or a rebuild still commits full batches.
func TestCatchUpFillsBatches(t *testing.T) {
	ctx := t.Context()
	mem := memstore.MustNew()
	for i := range 95 {
		add(t, mem, "counter-a", i)
	}
	var r *projection.Runner[projection.NoTx]
	delivered := 0
	store := &hookedStore{Store: mem, before: func(ctx context.Context, m es.Message) error {
		if m.Kind != es.KindEvent {
			return nil
		}
		if delivered%7 == 0 && delivered > 0 {
			if err := drained(ctx, r, delivered); err != nil {
				return err
			}
		}
		delivered++
		return nil
	}}
	m := &totals{}
	r = newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"), projection.WithBatch(10, time.Hour))
	want := []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 5}

	require.NoError(t, r.CatchUp(ctx))
	assert.Equal(t, want, m.batches, "full batches, then the rest at caught-up")
	m.batches = nil
	require.NoError(t, r.Rebuild(ctx, nil))
	assert.Equal(t, want, m.batches, "full batches, then the rest at caught-up")
	assert.Equal(t, map[string]int{"counter-a": 95 * 94 / 2}, m.snapshot())
}

// drained waits until r has taken the n events delivered (applied or
// pending in its batch), for at most 5 seconds.
func drained(ctx context.Context, r *projection.Runner[projection.NoTx], n int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Microsecond)
	defer tick.Stop()
	for {
		st, err := r.Status(ctx)
		if err != nil {
			return err
		}
		if st.Events+int64(st.Pending) == int64(n) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the runner took %d+%d of %d events: %w", st.Events, st.Pending, n, ctx.Err())
		case <-tick.C:
		}
	}
}

func TestGracefulStopCommitsTheBatch(t *testing.T) {
	ctx := t.Context()
	mem := memstore.MustNew()
	res := add(t, mem, "counter-a", 1, 2, 3)
	// A catch-up that never ends: the events wait for a full batch or an
	// hour, and the stop commits them.
	store := &hookedStore{Store: mem, before: func(ctx context.Context, m es.Message) error {
		if m.Kind == es.KindCaughtUp {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}
	m := &totals{}
	cps := new(projection.MemoryCheckpoints)
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithBatch(1000, time.Hour))
	stop := start(t, r)
	require.Eventually(t, func() bool {
		st, err := r.Status(ctx)
		return err == nil && st.State == projection.StateCatchingUp && st.Pending == 3
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, stop())
	assert.Equal(t, map[string]int{"counter-a": 6}, m.snapshot())
	cp, err := cps.Load(ctx, "totals/v1")
	require.NoError(t, err)
	assert.Equal(t, res.Position, cp.Position)
}

func appendRaw(t *testing.T, store es.Store, stream, data string) es.AppendResult {
	t.Helper()
	res, err := store.Append(t.Context(), stream, es.Any, es.EventData{Type: "Added", Data: []byte(data)})
	require.NoError(t, err)
	return res
}

func TestUndecodableEventSkippedToDeadLetters(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2)
	bad := appendRaw(t, store, "counter-a", `{"n":"three"}`)
	last := add(t, store, "counter-a", 4)
	m := &totals{}
	cps := new(projection.MemoryCheckpoints)
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithSkipPoison(cps))
	require.NoError(t, r.CatchUp(ctx))
	assert.Equal(t, map[string]int{"counter-a": 7}, m.snapshot())
	assert.Equal(t, []int{2, 1}, m.batches, "the batch before the event is committed first")
	dead, err := cps.DeadLetters(ctx, "totals")
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, bad.Position, dead[0].Event.Position)
	assert.Contains(t, dead[0].Error, "decode")
	cp, err := cps.Load(ctx, "totals/v1")
	require.NoError(t, err)
	assert.Equal(t, last.Position, cp.Position)
}

func TestLiveUndecodableEvent(t *testing.T) {
	t.Run("stops the runner", func(t *testing.T) {
		ctx := t.Context()
		store := memstore.MustNew()
		m := &totals{}
		cps := new(projection.MemoryCheckpoints)
		r := newRunner(t, store, cps, m.projection("totals"))
		stop := start(t, r)
		waitLive(t, r)
		good := add(t, store, "counter-a", 1)
		bad := appendRaw(t, store, "counter-a", `{"n":"two"}`)
		err := r.WaitFor(ctx, bad.Position)
		require.ErrorIs(t, err, projection.ErrStopped)
		err = stop()
		var perr *projection.PoisonError
		require.ErrorAs(t, err, &perr)
		var de *es.DecodeError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, bad.Position, perr.Event.Position)
		assert.Equal(t, "totals", perr.Projection)
		assert.Equal(t, map[string]int{"counter-a": 1}, m.snapshot())
		cp, err := cps.Load(ctx, "totals/v1")
		require.NoError(t, err)
		assert.Equal(t, good.Position, cp.Position, "the checkpoint stays before the event")
		st, err := r.Status(ctx)
		require.NoError(t, err)
		assert.Equal(t, projection.StateFailed, st.State)
	})
	t.Run("skipped", func(t *testing.T) {
		ctx := t.Context()
		store := memstore.MustNew()
		m := &totals{}
		cps := new(projection.MemoryCheckpoints)
		r := newRunner(t, store, cps, m.projection("totals"), projection.WithSkipPoison(cps))
		start(t, r)
		waitLive(t, r)
		bad := appendRaw(t, store, "counter-a", `{"n":"one"}`)
		require.NoError(t, r.WaitFor(ctx, bad.Position), "the checkpoint moves past the skipped event")
		res := add(t, store, "counter-a", 2)
		require.NoError(t, r.WaitFor(ctx, res.Position))
		assert.Equal(t, map[string]int{"counter-a": 2}, m.snapshot())
		dead, err := cps.DeadLetters(ctx, "totals")
		require.NoError(t, err)
		require.Len(t, dead, 1)
		assert.Equal(t, bad.Position, dead[0].Event.Position)
	})
}

// countingCheckpoints counts commits.
type countingCheckpoints struct {
	projection.MemoryCheckpoints
	commits atomic.Int32
}

func (c *countingCheckpoints) Commit(ctx context.Context, key string, cp projection.Checkpoint, apply func(projection.NoTx) error) error {
	c.commits.Add(1)
	return c.MemoryCheckpoints.Commit(ctx, key, cp, apply)
}

// TestLiveCheckpointsWaitForAnEvent: a filtered live runner does not
// commit each checkpoint of the log alone (other streams' events would cost
// a commit every 32), but with the next event, or after the batch wait.
func TestLiveCheckpointsWaitForAnEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	checkpoints := make(chan es.Position, 100) // checkpoints the subscription handed over
	store := &hookedStore{Store: memstore.MustNew(), after: func(m es.Message) {
		if m.Kind == es.KindCheckpoint {
			checkpoints <- m.Position
		}
	}}
	m := &totals{}
	cps := &countingCheckpoints{}
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithBatch(500, time.Hour))
	start(t, r)
	waitLive(t, r)
	<-checkpoints // the one before caught-up
	var other es.AppendResult
	for range 3 * es.DefaultCheckpointInterval {
		other = add(t, store, "other-x", 1)
	}
	for range 3 {
		<-checkpoints
	}
	require.NoError(t, r.WaitFor(ctx, other.Position), "an idle runner's read model is as of any later position")
	st, err := r.Status(ctx)
	require.NoError(t, err)
	assert.True(t, st.Checkpoint.IsZero(), "no commit for the checkpoints alone")
	assert.Zero(t, cps.commits.Load())

	res := add(t, store, "counter-a", 1)
	require.NoError(t, r.WaitFor(ctx, res.Position))
	assert.Equal(t, int32(1), cps.commits.Load(), "the event and the checkpoints before it in one commit")
}
