package replay_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/replay"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a clock the test sets.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// statusFixture has two projections: "a" caught up on the first four
// events (created at t0) and two behind (the head created at t0+150s),
// applied by this very runner; "b" never run.
func statusFixture(t *testing.T) []replay.Projection {
	ctx := t.Context()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := &clock{now: t0}
	store := memstore.MustNew(memstore.WithClock(clk.Now))
	cps := new(projection.MemoryCheckpoints)
	add(t, store, "counter-a", 1, 2, 3)
	add(t, store, "counter-b", 10)
	a := newRunner(t, store, cps, (&totals{}).projection("a"))
	require.NoError(t, a.CatchUp(ctx))
	clk.Set(t0.Add(90 * time.Second))
	add(t, store, "counter-a", 4)
	clk.Set(t0.Add(150 * time.Second))
	add(t, store, "counter-b", 20)
	b := newRunner(t, store, cps, (&totals{}).projection("b"))
	return []replay.Projection{a, b}
}

func TestStatus(t *testing.T) {
	ctx := t.Context()
	ps := statusFixture(t)

	res := run(ctx, []string{"status"}, ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Equal(t, ""+
		"NAME  VERSION  STATE    CHECKPOINT  LAG (EVENTS)  LAG (TIME)  LAST EVENT\n"+
		"a     1        stopped  C:4/P:4     2             2m30s       2026-01-02T03:04:05Z\n"+
		"b     1        stopped  start       6             2m30s       -\n", res.stdout)
	assert.Empty(t, res.stderr)

	res = run(ctx, []string{"status", "b"}, ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Equal(t, ""+
		"NAME  VERSION  STATE    CHECKPOINT  LAG (EVENTS)  LAG (TIME)  LAST EVENT\n"+
		"b     1        stopped  start       6             2m30s       -\n", res.stdout)
}

// jsonStatus is the shape "status --json" documents.
type jsonStatus struct {
	Name       string      `json:"name"`
	Version    int         `json:"version"`
	State      string      `json:"state"`
	Checkpoint es.Position `json:"checkpoint"`
	Head       es.Position `json:"head"`
	Lag        struct {
		Events  int     `json:"events"`
		AtLeast bool    `json:"atLeast"`
		Seconds float64 `json:"seconds"`
	} `json:"lag"`
	LastEvent *time.Time `json:"lastEvent"`
	Error     string     `json:"error"`
}

func TestStatusJSON(t *testing.T) {
	ctx := t.Context()
	ps := statusFixture(t)

	res := run(ctx, []string{"status", "--json", "b", "a"}, ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	var got []jsonStatus
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &got), res.stdout)
	require.Len(t, got, 2)

	b, a := got[0], got[1]
	assert.Equal(t, "b", b.Name)
	assert.Equal(t, 1, b.Version)
	assert.Equal(t, "stopped", b.State)
	assert.Equal(t, es.Start, b.Checkpoint)
	assert.Equal(t, es.Position{Commit: 6, Prepare: 6}, b.Head)
	assert.Equal(t, 6, b.Lag.Events)
	assert.False(t, b.Lag.AtLeast)
	assert.Equal(t, 150.0, b.Lag.Seconds)
	assert.Nil(t, b.LastEvent)
	assert.NotContains(t, res.stdout, `"error"`)

	assert.Equal(t, "a", a.Name)
	assert.Equal(t, es.Position{Commit: 4, Prepare: 4}, a.Checkpoint)
	assert.Equal(t, 2, a.Lag.Events)
	assert.Equal(t, 150.0, a.Lag.Seconds, "the last applied event is 150 s older than the head")
	require.NotNil(t, a.LastEvent)
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), *a.LastEvent)
}

func TestStatusBeyondHead(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 1)
	cps := new(projection.MemoryCheckpoints)
	require.NoError(t, cps.Commit(ctx, "a/v1", projection.Checkpoint{Position: es.Position{Commit: 40, Prepare: 40}}, nil))
	a := newRunner(t, store, cps, (&totals{}).projection("a"))

	res := run(ctx, []string{"status"}, a)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Equal(t, ""+
		"NAME  VERSION  STATE    CHECKPOINT  LAG (EVENTS)  LAG (TIME)  LAST EVENT\n"+
		"a     1        stopped  C:40/P:40   beyond head   0s          -\n"+
		"a: projection: checkpoint beyond the head of the log: a/v1 is at C:40/P:40, the log ends at C:1/P:1: rebuild it\n", res.stdout)
}

func TestStatusCappedFailedAndBroken(t *testing.T) {
	ctx := t.Context()
	last := time.Date(2026, 5, 6, 7, 8, 9, 0, time.FixedZone("CEST", 2*3600))
	ps := []replay.Projection{
		&fake{name: "big",
			status: projection.Status{Version: 3, State: projection.StateLive, Checkpoint: es.Position{Commit: 7, Prepare: 7}, LastEvent: last},
			lag:    projection.Lag{Head: es.Position{Commit: 900_000, Prepare: 900_000}, Events: projection.MaxLagCount, AtLeast: true, Time: 36 * time.Hour}},
		&fake{name: "poisoned",
			status: projection.Status{Version: 1, State: projection.StateFailed, Err: errors.New("poison event 3 of stream \"counter-x\"")}},
		&fake{name: "broken", err: errors.New("database is down")},
	}

	res := run(ctx, []string{"status"}, ps...)
	assert.Equal(t, replay.ExitFailure, res.code)
	assert.Equal(t, ""+
		"NAME      VERSION  STATE   CHECKPOINT  LAG (EVENTS)  LAG (TIME)  LAST EVENT\n"+
		"big       3        live    C:7/P:7     ≥100000       36h0m0s     2026-05-06T05:08:09Z\n"+
		"poisoned  1        failed  start       0             0s          -\n"+
		"poisoned: poison event 3 of stream \"counter-x\"\n", res.stdout)
	assert.Equal(t, "replay status: broken: database is down\n", res.stderr)

	res = run(ctx, []string{"status", "--json", "big", "poisoned"}, ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	var got []jsonStatus
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &got), res.stdout)
	require.Len(t, got, 2)
	assert.True(t, got[0].Lag.AtLeast)
	assert.Equal(t, projection.MaxLagCount, got[0].Lag.Events)
	assert.Equal(t, `poison event 3 of stream "counter-x"`, got[1].Error)
	assert.Equal(t, "failed", got[1].State)
}

func TestPartitionedProjection(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	for i := range 10 {
		add(t, store, fmt.Sprintf("counter-%d", i), i)
	}
	m := &totals{}
	p := m.projection("totals")
	p.Partitions = 2
	g, err := projection.NewPartitioned(store, new(projection.MemoryCheckpoints), registry(t), p,
		projection.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)

	res := run(ctx, []string{"rebuild", "totals"}, g)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	m.mu.Lock()
	total := 0
	for _, n := range m.sums[1] {
		total += n
	}
	m.mu.Unlock()
	assert.Equal(t, 45, total, "the parallel rebuild applied every event once")

	res = run(ctx, []string{"status"}, g)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, "totals/p0")
	assert.Contains(t, res.stdout, "totals/p1")

	res = run(ctx, []string{"status", "--json"}, g)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	var rows []struct {
		Partitions []struct {
			Partition  int         `json:"partition"`
			State      string      `json:"state"`
			Checkpoint es.Position `json:"checkpoint"`
		} `json:"partitions"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &rows))
	require.Len(t, rows, 1)
	require.Len(t, rows[0].Partitions, 2)
	for i, part := range rows[0].Partitions {
		assert.Equal(t, i, part.Partition)
		assert.Equal(t, "stopped", part.State)
		assert.Equal(t, uint64(10), part.Checkpoint.Commit)
	}
}
