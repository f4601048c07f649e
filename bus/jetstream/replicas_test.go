package jetstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
)

// Two replicas of a service (each with its connection and bus) run the
// same event handler group: both run, and they share the group's events,
// each handled once.
func TestReplicasShareAnEventHandlerGroup(t *testing.T) {
	url := natsURL(t)
	prefix := uniquePrefix(t, url)
	var mu sync.Mutex
	seen := make(map[int]int) // event → times handled
	var buses []*bus.Bus
	var stops []func() error
	for range 2 {
		tr, err := jetstream.Open(url, testLogger())
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		commands, err := es.NewRegistry()
		require.NoError(t, err)
		events, err := es.NewRegistry(es.Type[Pinged]("Pinged"))
		require.NoError(t, err)
		b, err := bus.New(commands, events, append(tr.Options(), bus.WithTopicPrefix(prefix), bus.WithLogger(testLogger()))...)
		require.NoError(t, err)
		require.NoError(t, bus.HandleEvent(b, "audit", func(ctx context.Context, p Pinged) error {
			mu.Lock()
			defer mu.Unlock()
			seen[p.N]++
			return nil
		}))
		stop := start(t, b)
		select {
		case <-b.Running():
		case <-time.After(wait):
			t.Fatal("the bus does not run")
		}
		buses, stops = append(buses, b), append(stops, stop)
	}
	const n = 20
	for i := range n {
		require.NoError(t, buses[i%2].Publish(t.Context(), pinged(i)))
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	}, wait, 5*time.Millisecond, "every event handled")
	for _, stop := range stops {
		assert.NoError(t, stop(), "both replicas ran until stopped")
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		assert.Equal(t, 1, seen[i], "event %d handled once", i)
	}
}
