package projection_test

import (
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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

type Added struct {
	N int `json:"n"`
}

type Renamed struct {
	Name string `json:"name"`
}

func types(t testing.TB) *es.Registry {
	r, err := es.NewRegistry(es.Type[Added]("Added"), es.Type[Renamed]("Renamed"))
	require.NoError(t, err)
	return r
}

// totals is an in-memory read model: the sum of Added per stream.
type totals struct {
	mu      sync.Mutex
	sums    map[string]int
	batches []int // sizes of the batches applied
	resets  int
	fail    func(ev projection.Event) error
}

func (m *totals) projection(name string) projection.Projection[projection.NoTx] {
	return projection.Projection[projection.NoTx]{
		Name:       name,
		Categories: []string{"counter"},
		Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			next := maps.Clone(m.sums) // all or nothing
			if next == nil {
				next = make(map[string]int)
			}
			for _, ev := range b.Events {
				if m.fail != nil {
					if err := m.fail(ev); err != nil {
						return err
					}
				}
				if a, ok := ev.Payload.(Added); ok {
					next[ev.Stream] += a.N
				}
			}
			m.sums = next
			m.batches = append(m.batches, len(b.Events))
			return nil
		},
		Reset: func(ctx context.Context, _ projection.NoTx, version int) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.sums = nil
			m.resets++
			return nil
		},
	}
}

func (m *totals) snapshot() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.sums)
}

func add(t testing.TB, store es.Store, stream string, ns ...int) es.AppendResult {
	t.Helper()
	evs := make([]es.EventData, len(ns))
	for i, n := range ns {
		evs[i] = es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, n)}
	}
	res, err := store.Append(t.Context(), stream, es.Any, evs...)
	require.NoError(t, err)
	return res
}

func newRunner(t testing.TB, store es.Store, cps projection.Checkpoints[projection.NoTx], p projection.Projection[projection.NoTx], opts ...projection.Option) *projection.Runner[projection.NoTx] {
	t.Helper()
	defaults := []projection.Option{projection.WithRetry(3, time.Millisecond), projection.WithLogger(slog.New(slog.DiscardHandler))}
	r, err := projection.NewRunner(store, cps, types(t), p, append(defaults, opts...)...)
	require.NoError(t, err)
	return r
}

// start runs r in a goroutine owned by the test and returns a function
// that stops it and returns Run's error.
func start(t *testing.T, r *projection.Runner[projection.NoTx]) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCatchUpThenLive(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2, 3)
	add(t, store, "counter-b", 10)
	add(t, store, "other-x", 100) // not this projection's category

	m := &totals{}
	r := newRunner(t, store, new(projection.MemoryCheckpoints), m.projection("totals"))
	require.NoError(t, r.CatchUp(ctx))
	assert.Equal(t, map[string]int{"counter-a": 6, "counter-b": 10}, m.snapshot())

	stop := start(t, r)
	res := add(t, store, "counter-a", 4)
	require.NoError(t, r.WaitFor(ctx, res.Position))
	assert.Equal(t, 10, m.snapshot()["counter-a"])
	// WaitFor promises the checkpoint; the state turns live just after
	// the commit that ends the catch-up.
	var st projection.Status
	require.Eventually(t, func() bool {
		var err error
		st, err = r.Status(ctx)
		return err == nil && st.State == projection.StateLive
	}, 10*time.Second, time.Millisecond, "the runner goes live")
	assert.Equal(t, res.Position, st.Checkpoint)
	require.NoError(t, stop())
	st, err := r.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, projection.StateStopped, st.State)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, r.WaitFor(short, es.End), context.DeadlineExceeded)
}
