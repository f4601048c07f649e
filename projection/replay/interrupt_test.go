package replay_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/replay"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// interruptAt makes the n-th batch applied to m block until the test
// lets it go, and returns a function that waits for that batch, cancels
// the tool's context (as Ctrl-C does) and lets the batch go. The handler
// honours its context, as one writing to a database does: the batch under
// way when the tool is interrupted is rolled back.
func interruptAt(t *testing.T, m *totals, n int) (interrupt func(cancel context.CancelFunc)) {
	entered, proceed := make(chan struct{}), make(chan struct{})
	batches := 0
	m.setBefore(func(ctx context.Context, b projection.Batch) error {
		batches++ // handlers of one runner are not called concurrently
		if batches == n {
			close(entered)
			<-proceed
		}
		return ctx.Err()
	})
	return func(cancel context.CancelFunc) {
		select {
		case <-entered:
		case <-t.Context().Done():
			t.Fatal("the batch never came")
		}
		cancel()
		close(proceed)
	}
}

// runAsync runs the tool in a goroutine with a context the caller cancels.
func runAsync(t *testing.T, args []string, ps ...replay.Projection) (cancel context.CancelFunc, wait func() result) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan result, 1)
	go func() { done <- run(ctx, args, ps...) }()
	return cancel, func() result { return <-done }
}

func TestInterruptAndResumeInPlace(t *testing.T) {
	f := newFixture(t, "a", "b")
	f.catchUp(t)
	m := f.models["a"]
	interrupt := interruptAt(t, m, 2)

	args := []string{"rebuild", "a", "b"}
	cancel, wait := runAsync(t, args, f.ps...)
	interrupt(cancel)
	res := wait()

	assert.Equal(t, replay.ExitInterrupted, res.code, res.stderr)
	assert.Equal(t, "replay rebuild: a: rebuild interrupted at 30% (C:3/P:3); the read model stays incomplete until it ends: run the same command again to resume\n"+
		"not started: b\n", res.stderr)
	assert.Regexp(t, `\Aa: 3 events, 30% \(C:3/P:3\), .*\n\z`, res.stdout)
	assert.Equal(t, map[string]int{"counter-a": 1, "counter-b": 2, "counter-c": 3}, m.version(1), "the first batch only")
	resets, _ := f.models["b"].counts()
	assert.Zero(t, resets, "b was not started")

	res = run(t.Context(), []string{"status", "--json", "a"}, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	var st []jsonStatus
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &st))
	require.Len(t, st, 1)
	assert.Equal(t, "rebuilding", st[0].State)
	assert.Equal(t, "C:3/P:3", st[0].Checkpoint.String())
	assert.Equal(t, 7, st[0].Lag.Events)

	m.setBefore(nil)
	res = run(t.Context(), args, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Regexp(t, `(?m)^a: 7 events, 100% \(C:10/P:10\)`, res.stdout, "it went on from the checkpoint")
	assert.Regexp(t, `(?m)^a: rebuilt in place: 7 events in .*, at C:10/P:10$`, res.stdout)
	assert.Regexp(t, rebuiltLine("b"), res.stdout)
	for name, m := range f.models {
		assert.Equal(t, f.want, m.version(1), name)
		resets, _ := m.counts()
		assert.Equal(t, 1, resets, "%s was reset once across both runs", name)
	}
	res = run(t.Context(), []string{"status", "a"}, f.ps...)
	assert.Contains(t, res.stdout, "\na     1        stopped  C:10/P:10   0   ")
}

func TestInterruptAndResumeBlueGreen(t *testing.T) {
	f := newFixture(t, "a")
	f.catchUp(t)
	m := f.models["a"]
	interrupt := interruptAt(t, m, 3)

	args := []string{"rebuild", "--blue-green", "--drop-old", "a"}
	cancel, wait := runAsync(t, args, f.ps...)
	interrupt(cancel)
	res := wait()

	assert.Equal(t, replay.ExitInterrupted, res.code, res.stderr)
	assert.Equal(t, "replay rebuild: a: blue/green rebuild of version 2 interrupted at 60% (C:6/P:6); version 1 keeps serving: run the same command again to resume version 2\n", res.stderr)
	active, err := f.cps.ActiveVersion(t.Context(), "a")
	require.NoError(t, err)
	assert.Equal(t, 1, active)
	assert.Equal(t, 666, m.version(1)["counter-bogus"], "version 1 serves on")
	assert.Equal(t, map[string]int{"counter-a": 5, "counter-b": 7, "counter-c": 9}, m.version(2), "two batches of version 2")

	m.setBefore(nil)
	res = run(t.Context(), args, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Regexp(t, `(?m)^a: built version 2 beside version 1 and switched to it: 4 events in .*, at C:10/P:10\na: dropped version 1\n\z`, res.stdout)
	active, err = f.cps.ActiveVersion(t.Context(), "a")
	require.NoError(t, err)
	assert.Equal(t, 2, active)
	assert.Equal(t, f.want, m.version(2))
	assert.Nil(t, m.version(1))
	resets, dropped := m.counts()
	assert.Zero(t, resets)
	assert.Equal(t, []int{1}, dropped)
}

func TestInterruptBeforeDrop(t *testing.T) {
	// The rebuild caught up as ctx ended: the switch stands, the drop waits.
	ctx, cancel := context.WithCancel(t.Context())
	p := &cancelling{fake: fake{name: "x"}, cancel: cancel}
	res := run(ctx, []string{"rebuild", "--blue-green", "--drop-old", "x"}, p)
	assert.Equal(t, replay.ExitInterrupted, res.code)
	assert.Equal(t, "x: built version 2 beside version 1 and switched to it: 5 events in ", res.stdout[:68])
	assert.Equal(t, "replay rebuild: x: interrupted before dropping version 1: drop it with \"replay drop x 1\"\n", res.stderr)
	assert.False(t, p.dropped)
}

// cancelling is a projection whose blue/green rebuild finishes, then
// cancels the tool's context, as a Ctrl-C at that moment does.
type cancelling struct {
	fake
	cancel  context.CancelFunc
	dropped bool
}

func (c *cancelling) RebuildBlueGreen(ctx context.Context, report func(projection.Progress)) (int, int, error) {
	report(projection.Progress{Projection: c.name, Events: 5, Done: true})
	c.cancel()
	return 1, 2, ctx.Err()
}

func (c *cancelling) DropVersion(context.Context, int) error {
	c.dropped = true
	return nil
}

func TestInterruptBar(t *testing.T) {
	f := newFixture(t, "a")
	interrupt := interruptAt(t, f.models["a"], 2)
	cancel, wait := runAsync(t, []string{"rebuild", "--progress", "bar", "a"}, f.ps...)
	interrupt(cancel)
	res := wait()
	assert.Equal(t, replay.ExitInterrupted, res.code, res.stderr)
	assert.Regexp(t, `\A\ra \[#######-+\]  30%  3 events  .*\n\z`, res.stdout, "the bar stays, on a line of its own")
	assert.Contains(t, res.stderr, "a: rebuild interrupted at 30% (C:3/P:3);")
}

func TestInterruptBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // Ctrl-C came first
	f := newFixture(t, "a")
	res := run(ctx, []string{"rebuild", "--blue-green", "a"}, f.ps...)
	assert.Equal(t, replay.ExitInterrupted, res.code, res.stderr)
	assert.Equal(t, "replay rebuild: a: blue/green rebuild of version 2 interrupted; version 1 keeps serving: run the same command again to resume version 2\n", res.stderr)
	active, err := f.cps.ActiveVersion(ctx, "a")
	require.NoError(t, err)
	assert.Zero(t, active)

	res = run(ctx, []string{"rebuild", "--blue-green", "x"}, &early{fake{name: "x"}})
	assert.Equal(t, replay.ExitInterrupted, res.code, res.stderr)
	assert.Equal(t, "replay rebuild: x: blue/green rebuild interrupted before it started; run the same command again\n", res.stderr)

	res = run(ctx, []string{"rebuild", "a"}, f.ps...)
	assert.Equal(t, replay.ExitInterrupted, res.code, res.stderr)
	assert.Contains(t, res.stderr, "replay rebuild: a: rebuild interrupted; ")
}

// early is a projection whose blue/green rebuild stops before it knows the
// versions, as a runner does when reading the active version fails.
type early struct{ fake }

func (e *early) RebuildBlueGreen(ctx context.Context, _ func(projection.Progress)) (int, int, error) {
	return 0, 0, ctx.Err()
}
