package esdbbus_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/bustest"
	"github.com/eventfold/eventfold/bus/esdbbus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type Deposited struct {
	Amount int `json:"amount"`
}

// effects counts what the handlers did, per event.
type effects struct {
	mu sync.Mutex
	n  map[uuid.UUID]int
	by map[string]int // replica → events handled
}

func (e *effects) add(id uuid.UUID, replica string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[id]++
	e.by[replica]++
}

func (e *effects) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.n)
}

// replica starts one replica of a service: its own connection, transport
// and bus, whose event handler group "audit" reads the domain's events
// ("acct-" streams) from `$all` through the group "events-audit".
func replica(t *testing.T, srv *esdbtest.Server, processed bus.ProcessedStore,
	handle func(ctx context.Context, e Deposited) error) (stop func()) {
	t.Helper()
	store, err := eventstoredb.Open(srv.ConnectionString(), eventstoredb.WithLogger(quiet),
		eventstoredb.WithResubscribe(50, 5*time.Millisecond))
	require.NoError(t, err)
	tr, err := esdbbus.New(store, esdbbus.WithLogger(quiet), esdbbus.WithRetryWait(20*time.Millisecond),
		esdbbus.WithSource("t-events", esdbbus.StreamPrefixes("acct-")),
		esdbbus.WithBufferSize(5),
		esdbbus.WithGroupSettings(eventstoredb.GroupSettings{MessageTimeout: 2 * time.Second, MaxRetryCount: 50}))
	require.NoError(t, err)
	commands, err := es.NewRegistry()
	require.NoError(t, err)
	events, err := es.NewRegistry(es.Type[Deposited]("MoneyDeposited"))
	require.NoError(t, err)
	b, err := bus.New(commands, events, append(tr.Options(), bus.WithTopicPrefix("t-"), bus.WithLogger(quiet))...)
	require.NoError(t, err)
	require.NoError(t, bus.HandleEvent(b, "audit", handle, bus.WithIdempotency(processed)))
	stopBus := bustest.Start(t, b)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stopBus()
			assert.NoError(t, tr.Close())
			assert.NoError(t, store.Close())
		})
	}
	t.Cleanup(stop)
	return stop
}

// Three replicas share one group; one is killed in the middle of its
// messages (its bus stops while it holds unacknowledged ones), and the
// server's subscriptions all drop once. Every event is handled, and with
// bus.WithIdempotency each one's effect happens exactly once.
func TestReplicasKilledMidBatchHandleEveryEventOnce(t *testing.T) {
	srv := esdbtest.New(t)
	processed := new(bus.MemoryProcessed)
	eff := &effects{n: map[uuid.UUID]int{}, by: map[string]int{}}
	const total = 90

	var killed atomic.Bool
	var stop1 func()
	var handled1 atomic.Int32
	stop1 = replica(t, srv, processed, func(ctx context.Context, e Deposited) error {
		rec, _ := bus.EventFromContext(ctx)
		if handled1.Add(1) == 4 && killed.CompareAndSwap(false, true) {
			go stop1() // killed: this message and its buffer are not acknowledged
		}
		eff.add(rec.ID, "r1")
		return nil
	})
	for _, name := range []string{"r2", "r3"} {
		replica(t, srv, processed, func(ctx context.Context, e Deposited) error {
			rec, _ := bus.EventFromContext(ctx)
			eff.add(rec.ID, name)
			return nil
		})
	}
	for i := range total {
		require.NoError(t, srv.Seed(fmt.Sprintf("acct-%d", i%7), esdbtest.Event{Type: "MoneyDeposited", Data: fmt.Appendf(nil, `{"amount":%d}`, i)}))
		if i == total/2 {
			srv.DropSubscriptions() // every replica loses its subscription once
		}
	}
	require.Eventually(t, func() bool { return eff.count() == total }, 20*time.Second, 5*time.Millisecond, "every event is handled")
	assert.True(t, killed.Load())
	// Some events were delivered more than once: at least once, and the
	// effects once all the same.
	store, err := eventstoredb.Open(srv.ConnectionString(), eventstoredb.WithLogger(quiet))
	require.NoError(t, err)
	defer store.Close()
	info, err := store.GroupInfo(t.Context(), eventstoredb.Group{Stream: eventstoredb.AllStream, Name: "events-audit"})
	require.NoError(t, err)
	assert.Greater(t, info.Delivered, int64(total), "redeliveries")
	t.Logf("deliveries %d for %d events; by replica %v", info.Delivered, total, eff.by)
	eff.mu.Lock()
	defer eff.mu.Unlock()
	for id, n := range eff.n {
		assert.Equal(t, 1, n, "event %s had its effect once", id)
	}
	assert.Positive(t, eff.by["r2"]+eff.by["r3"])
	for _, e := range srv.All() {
		if e.Type == "MoneyDeposited" {
			assert.Contains(t, eff.n, e.ID)
		}
	}
}
