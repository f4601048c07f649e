package bus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/bus"
)

// wait bounds every wait of the tests, generous for brokers on a busy
// machine; nothing waits for it unless something is broken.
const wait = 30 * time.Second

// newBus returns a bus on tr with fast retries, for the test's domain.
func newBus(t *testing.T, tr transport, opts ...bus.Option) *bus.Bus {
	t.Helper()
	all := append([]bus.Option{
		bus.WithTransport(tr.pub, tr.sub),
		bus.WithTopicPrefix(tr.prefix),
		bus.WithLogger(testLogger()),
		bus.WithRetry(3, 5*time.Millisecond, 20*time.Millisecond),
		bus.WithErrors(ErrInsufficientFunds),
	}, opts...)
	if tr.replies != nil {
		all = append(all, bus.WithReplyTransport(tr.replies.pub, tr.replies.sub))
	}
	b, err := bus.New(commandTypes(), eventTypes(), all...)
	require.NoError(t, err)
	return b
}

// run runs b until the test ends or stop is called, and returns once b
// runs.
func run(t *testing.T, b *bus.Bus) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				t.Errorf("the bus did not stop within %v", wait)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-b.Running():
	case err := <-done:
		t.Fatalf("Run returned before running: %v", err)
	case <-time.After(wait):
		t.Fatalf("the bus did not run within %v", wait)
	}
	return stop
}

// recv returns the next value of ch, failing the test if none comes.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("nothing received within %v", wait)
		panic("unreachable")
	}
}
