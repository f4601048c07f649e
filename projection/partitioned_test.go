package projection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ledger is a read model that records every application of every event,
// and checks that each stream's events arrive in order.
type ledger struct {
	mu       sync.Mutex
	applied  map[uuid.UUID]int // event ID → applications
	next     map[string]uint64 // stream → the revision expected next
	disorder []string
	// onBatch, if set, is called after each batch is applied.
	onBatch func(b projection.Batch)
	// atLeastOnce accepts a stream's events applied again from an earlier
	// revision (checkpoints not committed with the read model), counting
	// them in again.
	atLeastOnce bool
	again       int
}

func newLedger() *ledger { l := &ledger{}; l.reset(); return l }

func (l *ledger) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied, l.next, l.disorder = map[uuid.UUID]int{}, map[string]uint64{}, nil
}

func (l *ledger) projection(name string, partitions int) projection.Projection[projection.NoTx] {
	return projection.Projection[projection.NoTx]{
		Name: name, Partitions: partitions, Categories: []string{"acct"},
		Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
			l.mu.Lock()
			for _, ev := range b.Events {
				l.applied[ev.ID]++
				if l.atLeastOnce && ev.Revision < l.next[ev.Stream] {
					l.again++
				} else if ev.Revision != l.next[ev.Stream] {
					l.disorder = append(l.disorder, fmt.Sprintf("%s: revision %d, want %d", ev.Stream, ev.Revision, l.next[ev.Stream]))
				}
				l.next[ev.Stream] = ev.Revision + 1
			}
			hook := l.onBatch
			l.mu.Unlock()
			if hook != nil {
				hook(b)
			}
			return nil
		},
		Reset: func(context.Context, projection.NoTx, int) error { l.reset(); return nil },
	}
}

// check asserts that the ledger holds every event of the "acct" streams
// of store exactly once, in order.
func (l *ledger) check(t *testing.T, store es.Store) {
	t.Helper()
	want := map[uuid.UUID]int{}
	for ev, err := range store.ReadAll(t.Context(), es.ReadAllOptions{}) {
		require.NoError(t, err)
		if !ev.IsSystem() && len(ev.Stream) > 5 && ev.Stream[:5] == "acct-" {
			want[ev.ID] = 1
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	assert.Empty(t, l.disorder, "each stream's events in order")
	lost, doubled := 0, 0
	for id := range want {
		switch n := l.applied[id]; {
		case n == 0:
			lost++
		case n > 1:
			doubled++
		}
	}
	assert.Zero(t, lost, "events lost")
	if !l.atLeastOnce {
		assert.Zero(t, doubled, "events applied twice")
	}
	assert.Equal(t, len(want), len(l.applied), "no event applied that is not in the log")
}

func appendAccounts(t *testing.T, store es.Store, streams, events int) es.Position {
	t.Helper()
	var last es.Position
	for i := range events {
		res, err := store.Append(t.Context(), fmt.Sprintf("acct-%d", i%streams), es.Any, es.EventData{Type: "Deposited", Data: []byte(`{}`)})
		require.NoError(t, err)
		last = res.Position
	}
	return last
}

func TestPartitionOfIsStable(t *testing.T) {
	// FNV-1a of the key, modulo the partitions: these never change.
	assert.Equal(t, 0, projection.PartitionOf("order-1", 1))
	golden := map[string]int{"order-1": projection.PartitionOf("order-1", 8), "": projection.PartitionOf("", 8)}
	assert.Equal(t, 2166136261%8, golden[""], "FNV-1a's offset basis for the empty key")
	counts := make([]int, 4)
	for i := range 4000 {
		counts[projection.PartitionOf(fmt.Sprintf("order-%d", i), 4)]++
	}
	for _, n := range counts {
		assert.InDelta(t, 1000, n, 150, "keys spread evenly: %v", counts)
	}
}

func TestAssignmentIsFairAndDisjoint(t *testing.T) {
	for _, tc := range []struct{ members, partitions int }{{1, 4}, {2, 4}, {3, 4}, {3, 8}, {5, 4}} {
		var names []string
		for i := range tc.members {
			names = append(names, fmt.Sprintf("m%d", i))
		}
		owner := map[int]string{}
		for _, m := range names {
			mine := projection.Assignment(names, m, tc.partitions)
			assert.LessOrEqual(t, len(mine), (tc.partitions+tc.members-1)/tc.members)
			assert.GreaterOrEqual(t, len(mine), tc.partitions/tc.members)
			for _, p := range mine {
				assert.Empty(t, owner[p], "partition %d assigned twice", p)
				owner[p] = m
			}
		}
		assert.Len(t, owner, tc.partitions, "every partition assigned")
	}
	assert.Equal(t, []int{0, 1, 2}, projection.Assignment(nil, "alone", 3), "a member not yet listed counts itself")
}

func TestPartitionedValidates(t *testing.T) {
	l := newLedger()
	_, err := projection.NewPartitioned(memstore.MustNew(), new(projection.MemoryCheckpoints), nil, l.projection("p", 1))
	assert.ErrorIs(t, err, projection.ErrInvalidProjection)
	_, err = projection.NewRunner(memstore.MustNew(), new(projection.MemoryCheckpoints), nil, l.projection("p", 4))
	assert.ErrorContains(t, err, "NewPartitioned")
	_, err = projection.NewPartitioned(memstore.MustNew(), new(projection.MemoryCheckpoints), nil, l.projection("p", projection.MaxPartitions+1))
	assert.ErrorIs(t, err, projection.ErrInvalidProjection)
	_, err = projection.NewPartitioned(memstore.MustNew(), new(projection.MemoryCheckpoints), nil, l.projection("p", 4), projection.WithWorkers(0))
	assert.ErrorIs(t, err, projection.ErrInvalidProjection)
}

// waitForAll waits until every partition of g has passed the head of the
// log: WaitFor on the position of an event that no partition consumes.
func waitForAll(t *testing.T, store es.Store, g *projection.Partitioned[projection.NoTx]) {
	t.Helper()
	res, err := store.Append(t.Context(), "other-1", es.Any, es.EventData{Type: "Noted", Data: []byte(`{}`)})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, g.WaitFor(ctx, res.Position))
}

// runGroup runs g in the background until the test ends or stop is
// called; stop returns Run's result.
func runGroup(t *testing.T, g *projection.Partitioned[projection.NoTx]) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor waits, polling until a deadline, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// running returns the partitions that g runs in this replica.
func running(t *testing.T, g *projection.Partitioned[projection.NoTx]) []int {
	st, err := g.Status(t.Context())
	require.NoError(t, err)
	var out []int
	for i, p := range st.Parts {
		if p.State == projection.StateLive || p.State == projection.StateCatchingUp {
			out = append(out, i)
		}
	}
	return out
}

func TestPartitionedRunsLiveInOrder(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	appendAccounts(t, store, 20, 300)
	l := newLedger()
	g, err := projection.NewPartitioned(store, new(projection.MemoryCheckpoints), nil, l.projection("ledger", 4),
		projection.WithBatch(7, time.Millisecond))
	require.NoError(t, err)
	stop := runGroup(t, g)
	var appends sync.WaitGroup
	for w := range 3 {
		appends.Go(func() {
			for i := range 100 {
				_, err := store.Append(ctx, fmt.Sprintf("acct-%d", (w*7+i)%25), es.Any, es.EventData{Type: "Deposited", Data: []byte(`{}`)})
				assert.NoError(t, err)
			}
		})
	}
	appends.Wait()
	last := appendAccounts(t, store, 20, 1)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, g.WaitFor(wctx, last))
	other, err := store.Append(ctx, "other-1", es.Any, es.EventData{Type: "Noted", Data: []byte(`{}`)})
	require.NoError(t, err)
	require.NoError(t, g.WaitFor(wctx, other.Position), "a position no partition consumes: every partition passes it")
	l.check(t, store)

	st, err := g.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, 4, st.Partitions)
	assert.Len(t, st.Parts, 4)
	assert.Equal(t, projection.StateLive, st.State)
	assert.EqualValues(t, 601, st.Events)
	for i, p := range st.Parts {
		assert.Equal(t, i, p.Partition)
	}
	lag, err := g.Lag(ctx)
	require.NoError(t, err)
	assert.Zero(t, lag.Events)
	require.NoError(t, stop())
}

func TestReplicasSharePartitions(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	appendAccounts(t, store, 30, 200)
	cps := new(projection.MemoryCheckpoints) // one store, as replicas share one database
	l := newLedger()
	replica := func() *projection.Partitioned[projection.NoTx] {
		g, err := projection.NewPartitioned(store, cps, nil, l.projection("ledger", 4), projection.WithRebalance(5*time.Millisecond))
		require.NoError(t, err)
		return g
	}
	a, b := replica(), replica()
	stopA := runGroup(t, a)
	waitFor(t, "the first replica runs every partition", func() bool { return len(running(t, a)) == 4 })

	// A second replica joins while events are appended, then the first
	// leaves: the second takes everything over. (The appends are paced:
	// a writer faster than the replicas would keep them catching up.)
	appending, stopAppending := context.WithCancel(ctx)
	var appends sync.WaitGroup
	appends.Go(func() {
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for i := 0; appending.Err() == nil; i++ {
			_, err := store.Append(ctx, fmt.Sprintf("acct-%d", i%30), es.Any, es.EventData{Type: "Deposited", Data: []byte(`{}`)})
			assert.NoError(t, err)
			<-tick.C
		}
	})
	stopB := runGroup(t, b)
	waitFor(t, "the replicas share the partitions", func() bool {
		ra, rb := running(t, a), running(t, b)
		return len(ra) == 2 && len(rb) == 2 && !slices.ContainsFunc(ra, func(i int) bool { return slices.Contains(rb, i) })
	})
	waitFor(t, "the projection is live, here and elsewhere", func() bool {
		st, err := a.Status(ctx)
		return err == nil && st.State == projection.StateLive
	})
	require.NoError(t, stopA())
	waitFor(t, "the second replica runs every partition", func() bool { return len(running(t, b)) == 4 })
	stopAppending()
	appends.Wait()
	waitForAll(t, store, b)
	require.NoError(t, stopB())
	l.check(t, store)
}

func TestWaitForAPartitionElsewhere(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	cps := new(projection.MemoryCheckpoints)
	l := newLedger()
	runs, err := projection.NewPartitioned(store, cps, nil, l.projection("ledger", 2))
	require.NoError(t, err)
	waits, err := projection.NewPartitioned(store, cps, nil, l.projection("ledger", 2))
	require.NoError(t, err)
	runGroup(t, runs)
	waitFor(t, "the replica runs both partitions", func() bool { return len(running(t, runs)) == 2 })
	id := uuid.New()
	res, err := store.Append(ctx, "acct-7", es.Any, es.EventData{ID: id, Type: "Deposited", Data: []byte(`{}`)})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, waits.WaitFor(wctx, res.Position), "a replica that runs nothing polls the checkpoints")
	l.mu.Lock()
	assert.Equal(t, 1, l.applied[id])
	l.mu.Unlock()
}

func TestParallelRebuildInterruptedResumes(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	appendAccounts(t, store, 40, 2000)
	cps := new(projection.MemoryCheckpoints)
	l := newLedger()
	g, err := projection.NewPartitioned(store, cps, nil, l.projection("ledger", 4),
		projection.WithWorkers(3), projection.WithBatch(25, time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, g.CatchUp(ctx))
	l.check(t, store)

	rng := rand.New(rand.NewPCG(1, 2))
	interruptions := 0
	var reports []projection.Progress
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 50, "the rebuild does not finish")
		rctx, interrupt := context.WithCancel(ctx)
		after := rng.IntN(40) + 1
		var mu sync.Mutex
		batches := 0
		l.onBatch = func(projection.Batch) {
			mu.Lock()
			defer mu.Unlock()
			if batches++; batches == after {
				interrupt()
			}
		}
		err := g.Rebuild(rctx, func(p projection.Progress) { reports = append(reports, p) })
		interrupt()
		if err == nil {
			break
		}
		require.ErrorIs(t, err, context.Canceled)
		interruptions++
	}
	l.onBatch = nil
	assert.Positive(t, interruptions)
	l.check(t, store)
	require.NotEmpty(t, reports)
	assert.True(t, reports[len(reports)-1].Done)

	st, err := g.Status(ctx)
	require.NoError(t, err)
	head, _, err := es.Head(ctx, store)
	require.NoError(t, err)
	assert.Equal(t, head.Position, st.Checkpoint, "every partition at the head")
	for _, p := range st.Parts {
		assert.NotEqual(t, projection.StateRebuilding, p.State)
	}
}

func TestChangingPartitionsNeedsANewVersion(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	appendAccounts(t, store, 5, 20)
	cps := new(projection.MemoryCheckpoints)
	l := newLedger()
	four, err := projection.NewPartitioned(store, cps, nil, l.projection("ledger", 4))
	require.NoError(t, err)
	require.NoError(t, four.CatchUp(ctx))

	eight, err := projection.NewPartitioned(store, cps, nil, l.projection("ledger", 8))
	require.NoError(t, err)
	assert.ErrorIs(t, eight.CatchUp(ctx), projection.ErrPartitionsChanged)
	assert.ErrorIs(t, eight.Run(ctx), projection.ErrPartitionsChanged)
	one, err := projection.NewRunner(store, cps, nil, l.projection("ledger", 0))
	require.NoError(t, err)
	assert.ErrorIs(t, one.CatchUp(ctx), projection.ErrPartitionsChanged)

	// A new version with the new number is built beside the old one.
	p := l.projection("ledger", 8)
	p.Version = 2
	l.reset()
	v2, err := projection.NewPartitioned(store, cps, nil, p)
	require.NoError(t, err)
	from, to, err := v2.RebuildBlueGreen(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, [2]int{2, 3}, [2]int{from, to})
	active, err := cps.ActiveVersion(ctx, "ledger")
	require.NoError(t, err)
	assert.Equal(t, 3, active)
	l.check(t, store)
}

func TestDeployingANewPartitionedVersionSwitchesOnceEveryPartitionIsBuilt(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	appendAccounts(t, store, 10, 100)
	cps := new(projection.MemoryCheckpoints)
	l1 := newLedger()
	v1, err := projection.NewPartitioned(store, cps, nil, l1.projection("ledger", 2))
	require.NoError(t, err)
	require.NoError(t, v1.CatchUp(ctx))
	active, err := cps.ActiveVersion(ctx, "ledger")
	require.NoError(t, err)
	require.Equal(t, 1, active)

	l2 := newLedger()
	p := l2.projection("ledger", 3)
	p.Version = 2
	v2, err := projection.NewPartitioned(store, cps, nil, p)
	require.NoError(t, err)
	runGroup(t, v2)
	waitFor(t, "version 2 becomes active", func() bool {
		active, err := cps.ActiveVersion(ctx, "ledger")
		return err == nil && active == 2
	})
	l2.check(t, store)
}
