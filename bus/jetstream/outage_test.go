package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/internal/faultproxy"
	"github.com/eventfold/eventfold/projection"
)

const wait = 30 * time.Second

// natsURL returns EVENTFOLD_TEST_NATS, or skips the test.
func natsURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("EVENTFOLD_TEST_NATS")
	if u == "" {
		t.Skip("EVENTFOLD_TEST_NATS is not set: no NATS JetStream to run the bus on")
	}
	return u
}

// uniquePrefix returns a topic prefix of the test's own, whose streams are
// deleted when the test ends.
func uniquePrefix(t *testing.T, url string) string {
	prefix := "js" + strings.ReplaceAll(uuid.NewString()[:8], "-", "") + "-"
	t.Cleanup(func() { deleteStreams(t, url, prefix) })
	return prefix
}

// busOn returns a bus for Ping and Pinged on a transport of its own to
// url, with the topic prefix given; both are closed when the test ends.
func busOn(t *testing.T, url string, topts []jetstream.Option, opts ...bus.Option) (*bus.Bus, *jetstream.Transport) {
	t.Helper()
	tr, err := jetstream.Open(url, testLogger(), topts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	commands, err := es.NewRegistry(es.Type[Ping]("Ping"))
	require.NoError(t, err)
	events, err := es.NewRegistry(es.Type[Pinged]("Pinged"))
	require.NoError(t, err)
	b, err := bus.New(commands, events, append(tr.Options(), opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b, tr
}

// start runs b until stop is called; stop returns Run's result.
func start(t *testing.T, b *bus.Bus) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(wait):
				err = fmt.Errorf("the bus did not stop within %v", wait)
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case <-b.Running():
	case err := <-done:
		t.Fatalf("Run returned before running: %v", err)
	case <-time.After(wait):
		t.Fatalf("the bus did not run within %v", wait)
	}
	return stop
}

func pinged(n int) es.RecordedEvent {
	return es.RecordedEvent{ID: uuid.New(), Stream: "ping-1", Revision: uint64(n), Type: "Pinged",
		ContentType: es.ContentTypeJSON, Data: fmt.Appendf(nil, `{"n":%d}`, n),
		Position: es.Position{Commit: uint64(n + 1), Prepare: uint64(n + 1)}}
}

func recvN(t *testing.T, ch <-chan int) int {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(wait):
		t.Fatalf("nothing received within %v", wait)
		return 0
	}
}

// Stopping a bus on JetStream loses nothing: a handler under way finishes
// with its context intact and its message is acknowledged (not delivered
// again); a handler that outlasts the stop timeout and fails leaves its
// message unacknowledged, and the next bus on the same consumers gets it.
func TestStopLeavesMessagesOnJetStream(t *testing.T) {
	url := natsURL(t)
	prefix := uniquePrefix(t, url)
	topts := []jetstream.Option{jetstream.WithAckWait(time.Second)}
	opts := []bus.Option{bus.WithTopicPrefix(prefix), bus.WithStopTimeout(300 * time.Millisecond),
		bus.WithLogger(testLogger())}

	// Phase 1: the handler under way finishes during the stop.
	// The probe of the stop sends a Ping that no bus here handles: no
	// message arrives while the bus stops. (One that does may show up as
	// a data race under -race: watermill-nats closes its channel without
	// waiting for the callback that delivered into it.)
	b1, _ := busOn(t, url, topts, append(opts, bus.WithStopTimeout(wait), bus.WithRemoteCommands("Ping"))...)
	entered, release, intact := make(chan int, 1), make(chan struct{}), make(chan error, 1)
	require.NoError(t, bus.HandleEvent(b1, "g", func(ctx context.Context, p Pinged) error {
		entered <- p.N
		<-release
		intact <- ctx.Err()
		return nil
	}))
	stop1 := start(t, b1)
	require.NoError(t, b1.Publish(t.Context(), pinged(1)))
	assert.Equal(t, 1, recvN(t, entered))
	stopped := make(chan error, 1)
	go func() { stopped <- stop1() }()
	require.Eventually(t, func() bool {
		return errors.Is(b1.Send(t.Context(), Ping{}), bus.ErrStopped)
	}, wait, time.Millisecond, "the bus did not begin to stop")
	close(release)
	require.NoError(t, <-intact, "the handler's context is intact while the bus stops")
	require.NoError(t, <-stopped)

	// Phase 2: the handler outlasts the stop timeout and fails.
	b2, _ := busOn(t, url, topts, opts...)
	seen2 := make(chan int, 10)
	require.NoError(t, bus.HandleEvent(b2, "g", func(ctx context.Context, p Pinged) error {
		seen2 <- p.N
		<-ctx.Done()
		return ctx.Err()
	}))
	stop2 := start(t, b2)
	require.NoError(t, b2.Publish(t.Context(), pinged(2)))
	assert.Equal(t, 2, recvN(t, seen2), "event 1 was acknowledged: not delivered again")
	require.NoError(t, stop2())
	assert.Zero(t, b2.Dropped())

	// Phase 3: the next bus gets event 2 again.
	b3, _ := busOn(t, url, topts, opts...)
	seen3 := make(chan int, 10)
	require.NoError(t, bus.HandleEvent(b3, "g", func(ctx context.Context, p Pinged) error {
		seen3 <- p.N
		return nil
	}))
	stop3 := start(t, b3)
	assert.Equal(t, 2, recvN(t, seen3), "the message left by the stop is delivered again")
	require.NoError(t, stop3())
}

// The relay rides through NATS outages: with the connection cut, then
// stalled, its publications fail within the transport's timeout, its
// runner restarts, and after each recovery every event reaches the
// handlers at least once; JetStream keeps each event once. Cancelling the
// relay and the bus while NATS is stalled ends them within a bound.
func TestRelayThroughNATSOutages(t *testing.T) {
	raw := natsURL(t)
	u, err := url.Parse(raw)
	require.NoError(t, err)
	proxy := faultproxy.Start(t, u.Host)
	through := "nats://" + proxy.Addr()
	prefix := uniquePrefix(t, raw)
	const timeout = time.Second
	b, tr := busOn(t, through, []jetstream.Option{jetstream.WithTimeout(timeout), jetstream.WithAckWait(2 * time.Second)},
		bus.WithTopicPrefix(prefix), bus.WithStopTimeout(2*time.Second), bus.WithLogger(testLogger()))
	var mu sync.Mutex
	seen := make(map[uuid.UUID]int)
	require.NoError(t, bus.HandleEvent(b, "g", func(ctx context.Context, p Pinged) error {
		rec, _ := bus.EventFromContext(ctx)
		mu.Lock()
		seen[rec.ID]++
		mu.Unlock()
		return nil
	}))
	stopBus := start(t, b)

	store := memstore.MustNew()
	r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Relay(b.Publish), projection.WithRetry(2, 50*time.Millisecond), projection.WithRestart(50*time.Millisecond, 500*time.Millisecond),
		projection.WithBatch(10, 10*time.Millisecond), projection.WithStopTimeout(3*time.Second),
		projection.WithLogger(testLogger()))
	require.NoError(t, err)
	ctx, cancelRelay := context.WithCancel(context.WithoutCancel(t.Context()))
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancelRelay()
		select {
		case <-relayDone:
		case <-time.After(wait):
		}
	})

	var ids []uuid.UUID
	appendSome := func(n int) {
		for i := range n {
			res, err := store.Append(t.Context(), "ping-1", es.Any,
				es.EventData{Type: "Pinged", Data: fmt.Appendf(nil, `{"n":%d}`, len(ids)+i)})
			require.NoError(t, err)
			_ = res
		}
		ids = ids[:0]
		for e, err := range store.ReadAll(t.Context(), es.ReadAllOptions{}) {
			require.NoError(t, err)
			ids = append(ids, e.ID)
		}
	}
	allSeen := func(what string) {
		t.Helper()
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if seen[id] == 0 {
					return false
				}
			}
			return true
		}, 2*wait, 10*time.Millisecond, "%s: not every event reached the handler", what)
	}
	failed := func(what string) {
		t.Helper()
		require.Eventually(t, func() bool {
			st, err := r.Status(t.Context())
			require.NoError(t, err)
			return st.State == projection.StateRestarting && errors.Is(st.Err, projection.ErrUnavailable)
		}, wait, 10*time.Millisecond, "%s: the relay did not fail with ErrUnavailable and restart", what)
	}

	appendSome(20)
	allSeen("before the outages")

	proxy.Cut()
	appendSome(20)
	failed("cut")
	proxy.Restore()
	allSeen("after the cut")

	proxy.Stall()
	appendSome(20)
	failed("stall")
	proxy.Restore()
	allSeen("after the stall")

	// JetStream stored each event once, however often the relay
	// published it.
	streams, err := tr.Streams(t.Context(), prefix)
	require.NoError(t, err)
	var stored uint64
	for _, s := range streams {
		if strings.HasSuffix(s.Name, "events") {
			stored += s.Messages
		}
	}
	assert.Equal(t, uint64(len(ids)), stored, "the relay's redeliveries were de-duplicated")

	// A relay that lost its checkpoint publishes everything again:
	// JetStream drops every copy, and the handlers see nothing new.
	again, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Relay(b.Publish), projection.WithLogger(testLogger()))
	require.NoError(t, err)
	require.NoError(t, again.CatchUp(t.Context()))
	streams, err = tr.Streams(t.Context(), prefix)
	require.NoError(t, err)
	stored = 0
	for _, s := range streams {
		if strings.HasSuffix(s.Name, "events") {
			stored += s.Messages
		}
	}
	assert.Equal(t, uint64(len(ids)), stored, "the republished events were de-duplicated")

	// Cancelled while NATS is stalled, the relay and the bus end within a
	// bound: the runner's stop timeout, the bus's, the transport's.
	proxy.Stall()
	appendSome(5)
	start := time.Now()
	cancelRelay()
	select {
	case err := <-relayDone:
		assert.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("the relay did not stop within 15s with NATS stalled")
	}
	busStopped := make(chan error, 1)
	go func() { busStopped <- stopBus() }()
	select {
	case <-busStopped:
	case <-time.After(15 * time.Second):
		t.Fatal("the bus did not stop within 15s with NATS stalled")
	}
	t.Logf("stopped within %v with NATS stalled", time.Since(start))
	proxy.Restore()
}

func testLogger() *slog.Logger {
	if os.Getenv("EVENTFOLD_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.Level(-8)}))
	}
	return slog.New(slog.DiscardHandler)
}

// Two deployments on one NATS server, each in its namespace, with the same
// topic prefix and handler groups, never consume each other's messages.
func TestNamespacesKeepDeploymentsApart(t *testing.T) {
	url := natsURL(t)
	prefix := uniquePrefix(t, url)
	seen := map[string]chan int{"a": make(chan int, 10), "b": make(chan int, 10)}
	buses := make(map[string]*bus.Bus)
	for _, ns := range []string{"a", "b"} {
		b, _ := busOn(t, url, nil, bus.WithTopicPrefix(prefix), bus.WithNamespace(ns), bus.WithLogger(testLogger()))
		assert.Equal(t, prefix+ns+"-", b.TopicPrefix())
		require.NoError(t, bus.HandleEvent(b, "g", func(ctx context.Context, p Pinged) error {
			seen[ns] <- p.N
			return nil
		}))
		start(t, b)
		buses[ns] = b
	}
	require.NoError(t, buses["a"].Publish(t.Context(), pinged(1)))
	assert.Equal(t, 1, recvN(t, seen["a"]))
	require.NoError(t, buses["b"].Publish(t.Context(), pinged(2)))
	assert.Equal(t, 2, recvN(t, seen["b"]), "b's first event is its own")
	require.NoError(t, buses["a"].Publish(t.Context(), pinged(3)))
	assert.Equal(t, 3, recvN(t, seen["a"]), "a's next event is its own")
	select {
	case n := <-seen["b"]:
		t.Fatalf("b saw event %d", n)
	default:
	}
}
