package redisproj_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/redisproj"
)

// A runner builds the read model from the log, under the prefix of its
// version, which becomes the active one.
func TestRunnerBuildsReadModel(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	cps := newCheckpoints(t, client, testPrefix(t, client))
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2, 3)
	add(t, store, "counter-b", 10)
	add(t, store, "counter-a", 4)

	m := &totals{}
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithBatch(2, time.Millisecond))
	require.NoError(t, r.CatchUp(ctx))
	prefix, version, err := cps.ActivePrefix(ctx, "totals")
	require.NoError(t, err)
	assert.Equal(t, 1, version)
	assert.Equal(t, cps.Prefix("totals", 1), prefix)
	assert.Equal(t, map[string]int64{"counter-a": 10, "counter-b": 10}, read(t, client, prefix))

	// Live: an event appended is applied, and the checkpoint follows.
	stop := start(t, r)
	res := add(t, store, "counter-b", 5)
	require.NoError(t, r.WaitFor(ctx, res.Position))
	assert.Equal(t, map[string]int64{"counter-a": 10, "counter-b": 15}, read(t, client, prefix))
	require.NoError(t, stop())
	cp, err := cps.Load(ctx, "totals/v1")
	require.NoError(t, err)
	assert.Equal(t, res.Position, cp.Position)

	_, _, err = cps.ActivePrefix(ctx, "other")
	require.ErrorIs(t, err, redisproj.ErrNoActiveVersion)
}

// A runner stopped at random points, while rebuilding and while live,
// with a handler that fails at random, and started again each time, ends
// with the read model of a fresh replay: nothing lost, nothing applied
// twice.
func TestRandomStops(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	cps := newCheckpoints(t, client, testPrefix(t, client))
	store := memstore.MustNew()
	rng := rand.New(rand.NewPCG(2026, 12))
	appends := func(n int) ([][]es.EventData, []int) {
		out, streams := make([][]es.EventData, n), make([]int, n)
		for i := range out {
			evs := make([]es.EventData, 1+rng.IntN(4))
			for j := range evs {
				evs[j] = es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, rng.IntN(100))}
			}
			out[i], streams[i] = evs, rng.IntN(25)
		}
		return out, streams
	}
	write := func(batch [][]es.EventData, streams []int) {
		for i, evs := range batch {
			_, err := store.Append(ctx, fmt.Sprintf("counter-%d", streams[i]), es.Any, evs...)
			assert.NoError(t, err)
		}
	}
	write(appends(200))

	var mu sync.Mutex
	failRng := rand.New(rand.NewPCG(3, 4))
	m := &totals{inHandler: func() error {
		mu.Lock()
		defer mu.Unlock()
		if failRng.IntN(5) == 0 {
			return fmt.Errorf("handler failed: %w", projection.ErrUnavailable)
		}
		return nil
	}}
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithBatch(16, time.Millisecond), projection.WithRetry(3, time.Millisecond))
	interrupted := 0
	for i := range 30 {
		more, to := appends(rng.IntN(30))
		runCtx, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(60_000))*time.Microsecond)
		var wg sync.WaitGroup
		wg.Go(func() { write(more, to) })
		var err error
		if i%4 == 1 {
			err = r.Rebuild(runCtx, nil)
		} else {
			err = r.Run(runCtx)
		}
		cancel()
		wg.Wait()
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, projection.ErrUnavailable) {
			require.NoError(t, err)
		}
		st, err := r.Status(ctx)
		require.NoError(t, err)
		if st.State == projection.StateRebuilding {
			interrupted++
		}
	}
	t.Logf("%d of the stops interrupted a rebuild", interrupted)
	m.inHandler = nil
	require.NoError(t, r.CatchUp(ctx))
	want := replay(t, client, store)
	require.NotEmpty(t, want)
	assert.Equal(t, want, read(t, client, cps.Prefix("totals", 1)))
}

// A rebuild in place deletes the version's keys in the transaction of its
// first batch and replays the log; a blue/green rebuild builds the next
// version under its own prefix and switches the active version to it.
func TestRebuilds(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	cps := newCheckpoints(t, client, testPrefix(t, client))
	store := memstore.MustNew()
	for i := range 50 {
		add(t, store, fmt.Sprintf("counter-%d", i%7), i, 1)
	}
	m := &totals{}
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithBatch(10, time.Millisecond))
	require.NoError(t, r.CatchUp(ctx))
	want := replay(t, client, store)
	v1 := cps.Prefix("totals", 1)
	require.Equal(t, want, read(t, client, v1))

	// Keys of the version that the log does not explain go.
	require.NoError(t, client.Set(ctx, v1+"stray", "x", 0).Err())
	require.NoError(t, client.HSet(ctx, v1+"totals", "counter-0", 1_000_000).Err())
	require.NoError(t, r.Rebuild(ctx, nil))
	assert.Equal(t, want, read(t, client, v1))
	assert.Zero(t, client.Exists(ctx, v1+"stray").Val())

	from, to, err := r.RebuildBlueGreen(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, from)
	assert.Equal(t, 2, to)
	prefix, version, err := cps.ActivePrefix(ctx, "totals")
	require.NoError(t, err)
	assert.Equal(t, 2, version)
	assert.Equal(t, cps.Prefix("totals", 2), prefix)
	assert.Equal(t, want, read(t, client, prefix))

	require.NoError(t, r.DropVersion(ctx, 1))
	keys, err := client.Keys(ctx, v1+"*").Result()
	require.NoError(t, err)
	assert.Empty(t, keys)
	cp, err := cps.Load(ctx, "totals/v1")
	require.NoError(t, err)
	assert.Zero(t, cp)
	require.Error(t, r.DropVersion(ctx, 2), "the active version")

	// The runner of the code's version 1 now builds version 2, live.
	stop := start(t, r)
	res := add(t, store, "counter-0", 7)
	require.NoError(t, r.WaitFor(ctx, res.Position))
	require.NoError(t, stop())
	assert.Equal(t, replay(t, client, store), read(t, client, prefix))
}

// Events that the handler cannot apply are skipped and kept as dead
// letters, in log order.
func TestDeadLetters(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	cps := newCheckpoints(t, client, testPrefix(t, client))
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, -1, 2)
	add(t, store, "counter-b", -5, 3)
	m := &totals{}
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithSkipPoison(cps))
	require.NoError(t, r.CatchUp(ctx))
	assert.Equal(t, map[string]int64{"counter-a": 3, "counter-b": 3}, read(t, client, cps.Prefix("totals", 1)))

	dead, err := cps.DeadLetters(ctx, "totals")
	require.NoError(t, err)
	require.Len(t, dead, 2)
	assert.Equal(t, "counter-a", dead[0].Event.Stream)
	assert.Equal(t, uint64(1), dead[0].Event.Revision)
	assert.Equal(t, "counter-b", dead[1].Event.Stream)
	assert.Contains(t, dead[0].Error, "negative amount")
	assert.JSONEq(t, `{"n":-5}`, string(dead[1].Event.Data))

	// Saving the same event again keeps one.
	require.NoError(t, cps.SaveDeadLetter(ctx, dead[0]))
	again, err := cps.DeadLetters(ctx, "totals")
	require.NoError(t, err)
	assert.Len(t, again, 2)
}

// Redis restarted without persistence and lost every key: the runner,
// fenced, starts again and rebuilds the read model from the log.
func TestRedisLostEverything(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := testPrefix(t, client)
	cps := newCheckpoints(t, client, prefix, redisproj.WithLeaseTTL(300*time.Millisecond))
	store := memstore.MustNew()
	for i := range 30 {
		add(t, store, fmt.Sprintf("counter-%d", i%4), i)
	}
	m := &totals{}
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithRestart(time.Millisecond, 10*time.Millisecond))
	stop := start(t, r)
	res := add(t, store, "counter-0", 1)
	require.NoError(t, r.WaitFor(ctx, res.Position))

	flushPrefix(t, client, prefix) // what FLUSHDB does to the test's keys
	res = add(t, store, "counter-1", 2)
	want := replay(t, client, store)
	eventually(t, "the read model rebuilt", func() bool {
		got, err := client.HGetAll(ctx, cps.Prefix("totals", 1)+"totals").Result()
		return err == nil && len(got) == len(want) && fmt.Sprint(got) == fmt.Sprint(stringsOf(want))
	})
	require.NoError(t, r.WaitFor(ctx, res.Position))
	require.NoError(t, stop())
	assert.Equal(t, want, read(t, client, cps.Prefix("totals", 1)))
	version, err := cps.ActiveVersion(ctx, "totals")
	require.NoError(t, err)
	assert.Equal(t, 1, version)
}

func stringsOf(m map[string]int64) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// SetActiveVersion runs Activate's writes and records the version in one
// MULTI/EXEC; an error of Activate records nothing.
func TestSetActiveVersion(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := testPrefix(t, client)
	cps := newCheckpoints(t, client, prefix)
	pointer := prefix + "pointer"
	require.NoError(t, cps.SetActiveVersion(ctx, "orders", 3, func(tx redisproj.Tx) error {
		return tx.Pipe.Set(ctx, pointer, tx.Prefix(3), 0).Err()
	}))
	assert.Equal(t, cps.Prefix("orders", 3), client.Get(ctx, pointer).Val())
	assert.Equal(t, prefix+"rm:orders:v3:", cps.Prefix("orders", 3))

	boom := errors.New("boom")
	err := cps.SetActiveVersion(ctx, "orders", 4, func(tx redisproj.Tx) error {
		tx.Pipe.Set(ctx, pointer, tx.Prefix(4), 0)
		return boom
	})
	require.Equal(t, boom, err)
	v, err := cps.ActiveVersion(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, 3, v)
	assert.Equal(t, cps.Prefix("orders", 3), client.Get(ctx, pointer).Val())
	require.Error(t, cps.SetActiveVersion(ctx, "orders", -1, nil))

	require.NoError(t, client.Set(ctx, prefix+"active:bad", "x", 0).Err())
	_, err = cps.ActiveVersion(ctx, "bad")
	require.Error(t, err)
}
