package replay_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
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

var _ replay.Projection = (*projection.Runner[projection.NoTx])(nil)

type Added struct {
	N int `json:"n"`
}

func registry(t testing.TB) *es.Registry {
	t.Helper()
	r, err := es.NewRegistry(es.Type[Added]("Added"))
	require.NoError(t, err)
	return r
}

// totals is an in-memory read model, versioned for blue/green rebuilds:
// the sum of Added per stream of category "counter". Each batch applies
// whole or not at all.
type totals struct {
	mu      sync.Mutex
	sums    map[int]map[string]int // by version
	resets  int
	dropped []int
	// before, if set, runs before each batch is applied; an error rolls
	// the batch back.
	before func(ctx context.Context, b projection.Batch) error
}

func (m *totals) projection(name string) projection.Projection[projection.NoTx] {
	return projection.Projection[projection.NoTx]{
		Name:       name,
		Categories: []string{"counter"},
		Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
			m.mu.Lock()
			before := m.before
			m.mu.Unlock()
			if before != nil {
				if err := before(ctx, b); err != nil {
					return err
				}
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.sums == nil {
				m.sums = make(map[int]map[string]int)
			}
			next := maps.Clone(m.sums[b.Version])
			if next == nil {
				next = make(map[string]int)
			}
			for _, ev := range b.Events {
				next[ev.Stream] += ev.Payload.(Added).N
			}
			m.sums[b.Version] = next
			return nil
		},
		Reset: func(ctx context.Context, _ projection.NoTx, version int) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			delete(m.sums, version)
			m.resets++
			return nil
		},
		Drop: func(ctx context.Context, _ projection.NoTx, version int) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			delete(m.sums, version)
			m.dropped = append(m.dropped, version)
			return nil
		},
	}
}

// version returns a copy of the read model of a version; nil if it has none.
func (m *totals) version(v int) map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.sums[v])
}

// corrupt puts a wrong value in version v, which a rebuild must wipe.
func (m *totals) corrupt(v int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sums == nil {
		m.sums = make(map[int]map[string]int)
	}
	if m.sums[v] == nil {
		m.sums[v] = make(map[string]int)
	}
	m.sums[v]["counter-bogus"] = 666
}

func (m *totals) counts() (resets int, dropped []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resets, append([]int(nil), m.dropped...)
}

func (m *totals) setBefore(fn func(ctx context.Context, b projection.Batch) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.before = fn
}

// add appends events with the given values of N to stream.
func add(t testing.TB, store es.Store, stream string, ns ...int) {
	t.Helper()
	evs := make([]es.EventData, len(ns))
	for i, n := range ns {
		evs[i] = es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, n)}
	}
	_, err := store.Append(t.Context(), stream, es.Any, evs...)
	require.NoError(t, err)
}

// seed appends ten events, one per append, and returns the read model a
// full replay builds.
func seed(t testing.TB, store es.Store) map[string]int {
	t.Helper()
	want := make(map[string]int)
	for i := range 10 {
		stream := fmt.Sprintf("counter-%c", 'a'+i%3)
		add(t, store, stream, i+1)
		want[stream] += i + 1
	}
	return want
}

// newRunner returns a runner that applies batches of up to 3 events and
// reports progress after every batch.
func newRunner(t testing.TB, store es.Store, cps *projection.MemoryCheckpoints, p projection.Projection[projection.NoTx]) *projection.Runner[projection.NoTx] {
	t.Helper()
	r, err := projection.NewRunner(store, cps, registry(t), p,
		projection.WithBatch(3, time.Hour),
		projection.WithRetry(1, 0),
		projection.WithProgress(time.Nanosecond, func(projection.Progress) {}),
		projection.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	return r
}

// fixture is a store with events, checkpoints, and projections on them.
type fixture struct {
	store  *memstore.Store
	cps    *projection.MemoryCheckpoints
	want   map[string]int // the read model of a full replay
	models map[string]*totals
	ps     []replay.Projection
}

func newFixture(t testing.TB, names ...string) *fixture {
	t.Helper()
	f := &fixture{store: memstore.MustNew(), cps: new(projection.MemoryCheckpoints), models: make(map[string]*totals)}
	f.want = seed(t, f.store)
	for _, name := range names {
		m := &totals{}
		f.models[name] = m
		f.ps = append(f.ps, newRunner(t, f.store, f.cps, m.projection(name)))
	}
	return f
}

// result is what a run of the tool did.
type result struct {
	code           int
	stdout, stderr string
}

func run(ctx context.Context, args []string, ps ...replay.Projection) result {
	var stdout, stderr bytes.Buffer
	code := replay.Run(ctx, args, &stdout, &stderr, ps...)
	return result{code, stdout.String(), stderr.String()}
}

// fake is a Projection whose answers the test sets.
type fake struct {
	name   string
	status projection.Status
	lag    projection.Lag
	err    error
}

func (f *fake) Name() string { return f.name }
func (f *fake) Status(context.Context) (projection.Status, error) {
	return f.status, f.err
}
func (f *fake) Lag(context.Context) (projection.Lag, error) { return f.lag, f.err }
func (f *fake) Rebuild(context.Context, func(projection.Progress)) error {
	return f.err
}
func (f *fake) RebuildBlueGreen(context.Context, func(projection.Progress)) (int, int, error) {
	return 1, 2, f.err
}
func (f *fake) DropVersion(context.Context, int) error { return f.err }

func TestHelp(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, "a")
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		res := run(ctx, args, f.ps...)
		assert.Equal(t, replay.ExitOK, res.code, args)
		assert.Contains(t, res.stdout, "usage: replay <command>", args)
		for _, cmd := range []string{"list", "status", "rebuild", "drop", "help"} {
			assert.Contains(t, res.stdout, "\n  "+cmd+" ", args)
		}
		assert.Empty(t, res.stderr, args)
	}
	for _, args := range [][]string{{"rebuild", "-h"}, {"help", "rebuild"}, {"rebuild", "a", "--help"}} {
		res := run(ctx, args, f.ps...)
		assert.Equal(t, replay.ExitOK, res.code, args)
		assert.Contains(t, res.stdout, "usage: replay rebuild [flags] NAME... | --all\n", args)
		assert.Contains(t, res.stdout, "-blue-green", args)
		assert.Contains(t, res.stdout, "-progress auto", args)
	}
	assert.Zero(t, f.models["a"].resets, "help rebuilt nothing")

	var stdout, stderr bytes.Buffer
	code := replay.New("orders replay", f.ps...).Run(ctx, []string{"status", "-h"}, &stdout, &stderr)
	assert.Equal(t, replay.ExitOK, code)
	assert.Contains(t, stdout.String(), "usage: orders replay status [flags] [NAME...]\n")
	assert.Contains(t, stdout.String(), "-json")
}

func TestUsageErrors(t *testing.T) {
	ctx := t.Context()
	for _, tt := range []struct {
		args []string
		want string // in stderr
	}{
		{nil, "usage: replay <command>"},
		{[]string{"frobnicate"}, `replay: unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `replay help: unknown command "frobnicate"`},
		{[]string{"help", "list", "status"}, "replay help: want one command"},
		{[]string{"list", "a"}, `replay list: unexpected arguments ["a"]`},
		{[]string{"status", "--yaml"}, "replay status: flag provided but not defined: -yaml"},
		{[]string{"status", "nope"}, `replay status: unknown projection "nope"; the projections are: a, b`},
		{[]string{"rebuild"}, "replay rebuild: name the projections to rebuild (a, b), or use --all"},
		{[]string{"rebuild", "--all", "a"}, "replay rebuild: name projections or use --all, not both"},
		{[]string{"rebuild", "--drop-old", "a"}, "replay rebuild: --drop-old goes with --blue-green"},
		{[]string{"rebuild", "--progress=fancy", "a"}, `invalid value "fancy" for flag -progress: want auto, bar, lines or none`},
		{[]string{"rebuild", "x", "a", "y"}, `replay rebuild: unknown projections "x", "y"; the projections are: a, b`},
		{[]string{"drop", "a"}, `replay drop: want a projection and a version, got ["a"]`},
		{[]string{"drop", "a", "one"}, `replay drop: version "one": want a number from 1`},
		{[]string{"drop", "z", "1"}, `replay drop: unknown projection "z"`},
	} {
		f := newFixture(t, "a", "b")
		res := run(ctx, tt.args, f.ps...)
		assert.Equal(t, replay.ExitUsage, res.code, tt.args)
		assert.Contains(t, res.stderr, tt.want, tt.args)
		assert.Contains(t, res.stderr, "usage: replay", tt.args)
		assert.Empty(t, res.stdout, tt.args)
		for name, m := range f.models {
			resets, dropped := m.counts()
			assert.Zero(t, resets, "%v: %s was reset", tt.args, name)
			assert.Empty(t, dropped, "%v: %s had a version dropped", tt.args, name)
		}
	}
}

func TestBadProjections(t *testing.T) {
	ctx := t.Context()
	res := run(ctx, []string{"list"}, &fake{name: "a"}, &fake{name: "a"})
	assert.Equal(t, replay.ExitFailure, res.code)
	assert.Equal(t, "replay: two projections are named \"a\"\n", res.stderr)

	res = run(ctx, []string{"list"}, &fake{name: "a"}, nil)
	assert.Equal(t, replay.ExitFailure, res.code)
	assert.Equal(t, "replay: projection 1 is nil\n", res.stderr)
}

func TestList(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	cps := new(projection.MemoryCheckpoints)
	m := &totals{}
	p2 := m.projection("order-summaries")
	p2.Version = 2
	ps := []replay.Projection{
		newRunner(t, store, cps, p2),
		newRunner(t, store, cps, m.projection("stock")),
	}
	res := run(ctx, []string{"list"}, ps...)
	assert.Equal(t, replay.ExitOK, res.code)
	assert.Equal(t, "order-summaries  v2\nstock            v1\n", res.stdout)
	assert.Empty(t, res.stderr)

	res = run(ctx, []string{"list"}, append(ps, &fake{name: "broken", err: fmt.Errorf("database is down")})...)
	assert.Equal(t, replay.ExitFailure, res.code)
	assert.Equal(t, "order-summaries  v2\nstock            v1\n", res.stdout)
	assert.Equal(t, "replay list: broken: database is down\n", res.stderr)
}

func TestArguments(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, "a", "b")
	res := run(ctx, []string{"status", "--json", "--", "b"}, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, `"name": "b"`)
	assert.NotContains(t, res.stdout, `"name": "a"`)

	res = run(ctx, []string{"status", "a", "--json"}, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Contains(t, res.stdout, `"name": "a"`)

	res = run(ctx, []string{"list"})
	assert.Equal(t, replay.ExitOK, res.code)
	assert.Empty(t, res.stdout)
	res = run(ctx, []string{"rebuild", "--all"})
	assert.Equal(t, replay.ExitOK, res.code)
	assert.Equal(t, "no projections to rebuild\n", res.stdout)
	res = run(ctx, []string{"rebuild", "x"})
	assert.Equal(t, replay.ExitUsage, res.code)
	assert.Contains(t, res.stderr, `unknown projection "x"; the projections are: (none)`)
}
