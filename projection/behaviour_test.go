package projection_test

import (
	"context"
	"errors"
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

func TestNewRunnerValidates(t *testing.T) {
	_, err := projection.NewRunner[projection.NoTx](nil, nil, nil, projection.Projection[projection.NoTx]{Name: "bad name!", Version: -1, Categories: []string{"a-b"}},
		projection.WithBatch(0, 0), projection.WithRetry(0, 0), projection.WithSkipPoison(nil))
	require.ErrorIs(t, err, projection.ErrInvalidProjection)
	for _, want := range []string{`name "bad name!"`, "negative version", "nil Handle", `category "a-b"`, "nil store or checkpoints", "batch of 0", "retry 0", "nil dead-letter"} {
		assert.ErrorContains(t, err, want)
	}
}

func TestBatchesAreBounded(t *testing.T) {
	store := memstore.MustNew()
	for i := range 25 {
		add(t, store, fmt.Sprintf("counter-%d", i%3), i)
	}
	m := &totals{}
	r := newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"), projection.WithBatch(10, time.Hour))
	require.NoError(t, r.CatchUp(t.Context()))
	assert.Equal(t, []int{10, 10, 5}, m.batches, "full batches, then the rest at caught-up")
}

func TestFilteredProjectionDoesNotLag(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 1)
	var last es.AppendResult
	for range 100 {
		last = add(t, store, "other-x", 1)
	}
	m := &totals{}
	r := newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"))
	require.NoError(t, r.CatchUp(ctx))
	st, err := r.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, last.Position, st.Checkpoint, "the checkpoint follows the log's checkpoints past events of other streams")
	lag, err := r.Lag(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, lag.Events)
}

func TestEventTypeFilter(t *testing.T) {
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2)
	_, err := store.Append(t.Context(), "counter-a", es.Any, es.EventData{Type: "Renamed", Data: []byte(`{"name":"x"}`)})
	require.NoError(t, err)
	var seen []string
	p := projection.Projection[projection.NoTx]{
		Name:       "types",
		EventTypes: []string{"Renamed"},
		Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
			for _, ev := range b.Events {
				seen = append(seen, ev.Type)
			}
			return nil
		},
	}
	r := newRunner(t, store, new(projection.MemoryCheckpoints), p)
	require.NoError(t, r.CatchUp(t.Context()))
	assert.Equal(t, []string{"Renamed"}, seen)
}

func TestFailingBatchesAreRetried(t *testing.T) {
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2, 3)
	var failures atomic.Int32
	m := &totals{fail: func(projection.Event) error {
		if failures.Add(1) <= 2 {
			return errors.New("database hiccup")
		}
		return nil
	}}
	r := newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"))
	require.NoError(t, r.CatchUp(t.Context()))
	assert.Equal(t, map[string]int{"counter-a": 6}, m.snapshot(), "applied once, after two failed tries")
}

func poisonAt(n int) func(projection.Event) error {
	return func(ev projection.Event) error {
		if a, ok := ev.Payload.(Added); ok && a.N == n {
			return fmt.Errorf("cannot apply %d", n)
		}
		return nil
	}
}

func TestPoisonEventStopsTheRunner(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2)
	bad := add(t, store, "counter-a", 13)
	add(t, store, "counter-a", 4)
	m := &totals{fail: poisonAt(13)}
	cps := new(projection.MemoryCheckpoints)
	r := newRunner(t, store, cps, m.projection("totals"))
	err := r.CatchUp(ctx)
	var perr *projection.PoisonError
	require.ErrorAs(t, err, &perr)
	require.ErrorIs(t, err, projection.ErrPoisonEvent)
	assert.Equal(t, "counter-a", perr.Event.Stream)
	assert.Equal(t, uint64(2), perr.Event.Revision)
	assert.Equal(t, bad.Position, perr.Event.Position)
	assert.ErrorContains(t, err, "cannot apply 13")
	assert.Equal(t, map[string]int{"counter-a": 3}, m.snapshot(), "the events before the poison one are applied")
	st, err := r.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, -1, st.Checkpoint.Compare(bad.Position), "the checkpoint stays before the poison event")
	assert.Equal(t, projection.StateFailed, st.State)
}

func TestPoisonEventSkippedToDeadLetters(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 13, 4)
	m := &totals{fail: poisonAt(13)}
	cps := new(projection.MemoryCheckpoints)
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithSkipPoison(cps))
	require.NoError(t, r.CatchUp(ctx))
	assert.Equal(t, map[string]int{"counter-a": 5}, m.snapshot())
	dead, err := cps.DeadLetters(ctx, "totals")
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, uint64(1), dead[0].Event.Revision)
	assert.Contains(t, dead[0].Error, "cannot apply 13")
}

func TestUndecodableEventIsPoison(t *testing.T) {
	store := memstore.MustNew()
	add(t, store, "counter-a", 1)
	_, err := store.Append(t.Context(), "counter-a", es.Any, es.EventData{Type: "Added", Data: []byte(`{"n":"one"}`)})
	require.NoError(t, err)
	m := &totals{}
	r := newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"))
	err = r.CatchUp(t.Context())
	var de *es.DecodeError
	require.ErrorIs(t, err, projection.ErrPoisonEvent)
	require.ErrorAs(t, err, &de)
	assert.Equal(t, uint64(1), de.Revision)
	assert.Equal(t, map[string]int{"counter-a": 1}, m.snapshot())
}

func TestRebuildInPlace(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2, 3)
	m := &totals{}
	r := newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"))
	require.NoError(t, r.CatchUp(ctx))
	m.mu.Lock()
	m.sums["counter-a"] = 999 // the read model drifted (a bug, a manual edit)
	m.mu.Unlock()

	var reports []projection.Progress
	require.NoError(t, r.Rebuild(ctx, func(p projection.Progress) { reports = append(reports, p) }))
	assert.Equal(t, map[string]int{"counter-a": 6}, m.snapshot())
	assert.Equal(t, 1, m.resets)
	require.NotEmpty(t, reports)
	last := reports[len(reports)-1]
	assert.True(t, last.Done)
	assert.Equal(t, int64(3), last.Events)
}

func TestInterruptedRebuildResumes(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	for i := range 10 {
		add(t, store, "counter-a", i)
	}
	m := &totals{}
	cps := new(projection.MemoryCheckpoints)
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithBatch(1, time.Hour))
	require.NoError(t, r.CatchUp(ctx))

	// Interrupt the rebuild inside its fifth batch.
	rebuildCtx, cancel := context.WithCancel(ctx)
	var applied atomic.Int32
	m.fail = func(projection.Event) error {
		if applied.Add(1) == 5 {
			cancel()
			return context.Canceled
		}
		return nil
	}
	require.ErrorIs(t, r.Rebuild(rebuildCtx, nil), context.Canceled, "an interrupted rebuild says so")
	st, err := r.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, projection.StateRebuilding, st.State, "the checkpoint says a rebuild is under way")

	m.fail = nil
	require.NoError(t, r.Rebuild(ctx, nil))
	assert.Equal(t, 1, m.resets, "the second Rebuild continued the first instead of resetting again")
	assert.Equal(t, map[string]int{"counter-a": 45}, m.snapshot())
	st, err = r.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, projection.StateStopped, st.State)
}

func TestBlueGreen(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2)
	cps := new(projection.MemoryCheckpoints)

	// One read model per version, as tables of their own would be.
	var mu sync.Mutex
	models := map[int]map[string]int{}
	var activated, dropped []int
	p := projection.Projection[projection.NoTx]{
		Name:       "totals",
		Categories: []string{"counter"},
		Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
			mu.Lock()
			defer mu.Unlock()
			if models[b.Version] == nil {
				models[b.Version] = map[string]int{}
			}
			for _, ev := range b.Events {
				models[b.Version][ev.Stream] += ev.Payload.(Added).N
			}
			return nil
		},
		Activate: func(ctx context.Context, _ projection.NoTx, v int) error {
			activated = append(activated, v)
			return nil
		},
		Drop: func(ctx context.Context, _ projection.NoTx, v int) error {
			mu.Lock()
			defer mu.Unlock()
			delete(models, v)
			dropped = append(dropped, v)
			return nil
		},
	}
	r := newRunner(t, store, cps, p)
	require.NoError(t, r.CatchUp(ctx))
	assert.Equal(t, []int{1}, activated)

	add(t, store, "counter-a", 3)
	from, to, err := r.RebuildBlueGreen(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, from)
	assert.Equal(t, 2, to)
	assert.Equal(t, []int{1, 2}, activated)
	active, err := cps.ActiveVersion(ctx, "totals")
	require.NoError(t, err)
	assert.Equal(t, 2, active)
	assert.Equal(t, map[string]int{"counter-a": 6}, models[2])

	require.Error(t, r.DropVersion(ctx, 2), "the active version cannot be dropped")
	require.NoError(t, r.DropVersion(ctx, 1))
	assert.Equal(t, []int{1}, dropped)
	assert.NotContains(t, models, 1)

	// A runner of the same code now runs the active version.
	st, err := r.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Version)
}

func TestDeployingANewVersionRebuildsBlueGreen(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 5)
	cps := new(projection.MemoryCheckpoints)
	v1 := &totals{}
	require.NoError(t, newRunner(t, store, cps, v1.projection("totals")).CatchUp(ctx))

	v2 := &totals{}
	p := v2.projection("totals")
	p.Version = 2
	require.NoError(t, newRunner(t, store, cps, p).CatchUp(ctx))
	active, err := cps.ActiveVersion(ctx, "totals")
	require.NoError(t, err)
	assert.Equal(t, 2, active)
	assert.Equal(t, map[string]int{"counter-a": 5}, v2.snapshot())
}

func TestLeaseKeepsOneRunnerPerProjection(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	cps := new(projection.MemoryCheckpoints)
	a, b := &totals{}, &totals{}
	ra := newRunner(t, store, cps, a.projection("totals"))
	rb := newRunner(t, store, cps, b.projection("totals"))
	stopA := start(t, ra)
	res := add(t, store, "counter-a", 1)
	require.NoError(t, ra.WaitFor(ctx, res.Position))

	start(t, rb)
	require.Eventually(t, func() bool {
		st, _ := rb.Status(ctx)
		return st.State == projection.StateStandby
	}, 5*time.Second, time.Millisecond)

	require.NoError(t, stopA())
	res = add(t, store, "counter-a", 2)
	require.NoError(t, rb.WaitFor(ctx, res.Position))
	assert.Equal(t, map[string]int{"counter-a": 1}, a.snapshot())
	assert.Equal(t, 2, b.snapshot()["counter-a"], "b took over from the checkpoint a left")
}

func TestCheckpointBeyondHead(t *testing.T) {
	ctx := t.Context()
	cps := new(projection.MemoryCheckpoints)
	old := memstore.MustNew()
	add(t, old, "counter-a", 1, 2, 3)
	m := &totals{}
	require.NoError(t, newRunner(t, old, cps, m.projection("totals")).CatchUp(ctx))

	// The same checkpoints, against another (empty) event store.
	err := newRunner(t, memstore.MustNew(), cps, m.projection("totals")).CatchUp(ctx)
	require.ErrorIs(t, err, projection.ErrCheckpointBeyondHead)
}

func TestStreamCheckpoints(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2)
	cps, err := projection.NewStreamCheckpoints(store)
	require.NoError(t, err)
	m := &totals{}
	r := newRunner(t, store, cps, m.projection("totals"))
	require.NoError(t, r.CatchUp(ctx))
	cp, err := cps.Load(ctx, "totals/v1")
	require.NoError(t, err)
	assert.False(t, cp.Position.IsZero())

	// The checkpoint stream keeps one event, however many commits.
	res := add(t, store, "counter-a", 3)
	require.NoError(t, r.CatchUp(ctx))
	n := 0
	for _, err := range store.ReadStream(ctx, projection.CheckpointStreamPrefix+"totals/v1", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 1, n)
	cp, err = cps.Load(ctx, "totals/v1")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, cp.Position.Compare(res.Position), 0)

	// A checkpoint that does not parse is an error, not a restart.
	_, err = store.Append(ctx, projection.CheckpointStreamPrefix+"totals/v1", es.Any, es.EventData{Type: "$checkpoint", Data: []byte("garbage")})
	require.NoError(t, err)
	_, err = cps.Load(ctx, "totals/v1")
	require.ErrorIs(t, err, projection.ErrCorruptCheckpoint)
	require.ErrorIs(t, r.CatchUp(ctx), projection.ErrCorruptCheckpoint)
}

func TestSeveralProjectionsInOneProcess(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	cps := new(projection.MemoryCheckpoints)
	models := []*totals{{}, {}, {}}
	var runners []*projection.Runner[projection.NoTx]
	for i, m := range models {
		r := newRunner(t, store, cps, m.projection(fmt.Sprintf("totals-%d", i)))
		runners = append(runners, r)
		start(t, r)
	}
	var res es.AppendResult
	for i := range 50 {
		res = add(t, store, fmt.Sprintf("counter-%d", i%5), i)
	}
	for _, r := range runners {
		require.NoError(t, r.WaitFor(ctx, res.Position))
	}
	for _, m := range models[1:] {
		assert.Equal(t, models[0].snapshot(), m.snapshot())
	}
}

// fenced is a checkpoint store whose commits all fail as if another runner
// had moved the checkpoint.
type fenced struct{ projection.MemoryCheckpoints }

func (f *fenced) Commit(ctx context.Context, key string, cp projection.Checkpoint, apply func(projection.NoTx) error) error {
	return fmt.Errorf("moved: %w", projection.ErrFenced)
}

func TestFencedCommitsStopAtOnce(t *testing.T) {
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2)
	cps := &fenced{}
	m := &totals{}
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithSkipPoison(&cps.MemoryCheckpoints))
	err := r.CatchUp(t.Context())
	require.ErrorIs(t, err, projection.ErrFenced)
	assert.NotErrorIs(t, err, projection.ErrPoisonEvent, "no event is blamed")
	dead, err := cps.DeadLetters(t.Context(), "totals")
	require.NoError(t, err)
	assert.Empty(t, dead)
}

func TestWithoutRegistryEventsArriveAsStored(t *testing.T) {
	store := memstore.MustNew()
	add(t, store, "counter-a", 1)
	_, err := store.Append(t.Context(), "counter-a", es.Any, es.EventData{Type: "SomethingNew", Data: []byte(`{}`)})
	require.NoError(t, err)
	var got []es.RecordedEvent
	r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
		Name: "relay",
		Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
			for _, e := range b.Events {
				assert.Nil(t, e.Payload)
			}
			got = append(got, b.Recorded()...)
			return nil
		},
	})
	require.NoError(t, err)
	require.NoError(t, r.CatchUp(t.Context()))
	require.Len(t, got, 2)
	assert.Equal(t, "SomethingNew", got[1].Type, "a type no registry knows is not a poison event here")
}

func TestWaitForAPositionTheProjectionDoesNotConsume(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	m := &totals{}
	r := newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"))
	start(t, r)
	res := add(t, store, "counter-a", 1)
	require.NoError(t, r.WaitFor(ctx, res.Position))

	// An event of another stream: the projection never applies it (its
	// filter skips it, and no checkpoint comes for a while), but nothing
	// it consumes lies before it, so its read model is already as of it.
	other := add(t, store, "other-x", 1)
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, r.WaitFor(short, other.Position))

	// A position not in the log yet is waited for.
	tiny, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, r.WaitFor(tiny, es.Position{Commit: other.Position.Commit + 10, Prepare: other.Position.Prepare + 10}), context.DeadlineExceeded)
}

func TestStatusOfAStoppedRunnerTellsTheLastEventTime(t *testing.T) {
	ctx := t.Context()
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	store := memstore.MustNew(memstore.WithClock(func() time.Time { return at }))
	add(t, store, "counter-a", 1)
	cps := new(projection.MemoryCheckpoints)
	m := &totals{}
	require.NoError(t, newRunner(t, store, cps, m.projection("totals")).CatchUp(ctx))

	// Another process (the replay tool, say) asks.
	st, err := newRunner(t, store, cps, m.projection("totals")).Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, projection.StateStopped, st.State)
	assert.Equal(t, at, st.LastEvent)
}

// noCheckpoints is a store whose `$all` subscriptions send no checkpoint
// messages, only the caught-up message's position.
type noCheckpoints struct{ es.Store }

func (s noCheckpoints) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		for msg, err := range s.Store.SubscribeAll(ctx, opts) {
			if msg.Kind == es.KindCheckpoint && err == nil {
				continue
			}
			if !yield(msg, err) {
				return
			}
		}
	}
}

func TestCaughtUpPositionMovesTheCheckpoint(t *testing.T) {
	ctx := t.Context()
	mem := memstore.MustNew()
	add(t, mem, "counter-a", 1)
	var last es.AppendResult
	for range 10 {
		last = add(t, mem, "other-x", 1)
	}
	m := &totals{}
	r := newRunner(t, noCheckpoints{mem}, new(projection.MemoryCheckpoints), m.projection("totals"))
	require.NoError(t, r.CatchUp(ctx))
	st, err := r.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, last.Position, st.Checkpoint, "the caught-up message's position moves the checkpoint past skipped events")
}
