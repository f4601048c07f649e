package jetstream_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/internal/faultproxy"
)

// pingBus returns a bus for Ping and Pinged on tr, with a command handler
// and two event handler groups (each a consumer of its own), running until
// the test's cleanup or the returned stop; got receives the events.
func pingBus(t *testing.T, tr *jetstream.Transport, prefix string) (b *bus.Bus, got <-chan int, stop func()) {
	t.Helper()
	commands, err := es.NewRegistry(es.Type[Ping]("Ping"))
	require.NoError(t, err)
	events, err := es.NewRegistry(es.Type[Pinged]("Pinged"))
	require.NoError(t, err)
	b, err = bus.New(commands, events, append(tr.Options(), bus.WithTopicPrefix(prefix), bus.WithLogger(testLogger()))...)
	require.NoError(t, err)
	require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, p Ping) (Pong, error) { return Pong(p), nil }))
	ch := make(chan int, 10)
	for _, group := range []string{"a", "b"} {
		require.NoError(t, bus.HandleEvent(b, group, func(ctx context.Context, p Pinged) error {
			ch <- p.N
			return nil
		}))
	}
	halt := start(t, b)
	return b, ch, func() {
		require.NoError(t, halt())
		require.NoError(t, b.Close())
	}
}

// exercise sends a request and relays an event, which both groups handle.
func exercise(t *testing.T, b *bus.Bus, got <-chan int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	pong, err := bus.Request[Pong](ctx, b, Ping{N: 7})
	require.NoError(t, err)
	assert.Equal(t, 7, pong.N)
	require.NoError(t, b.Publish(ctx, pinged(3)))
	assert.Equal(t, 3, recvN(t, got))
	assert.Equal(t, 3, recvN(t, got))
}

// A transport from Open makes one connection, which its publishers, the
// replies and every consumer (a command handler, two event handler groups)
// share; Close closes it.
func TestOpenSharesOneConnection(t *testing.T) {
	u := natsURL(t)
	prefix := uniquePrefix(t, u)
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	proxy := faultproxy.Start(t, parsed.Host)
	ignore := goleak.IgnoreCurrent()

	tr, err := jetstream.Open("nats://"+proxy.Addr(), testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	b, got, stop := pingBus(t, tr, prefix)
	exercise(t, b, got)
	assert.Equal(t, 1, proxy.Dialed(), "one connection for the whole transport")
	stop()
	require.NoError(t, tr.Close())

	deadline := time.Now().Add(wait)
	for proxy.Open() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling with a deadline: the proxy sees the close shortly after
	}
	assert.Zero(t, proxy.Open(), "Close closes the connection Open made")
	goleak.VerifyNone(t, ignore)
}

// A transport from New runs on the caller's connection, dialled with the
// caller's own options, and leaves it open: a subscription of the caller's
// on it still receives after the bus and the transport are closed.
func TestNewRunsOnTheCallersConnection(t *testing.T) {
	u := natsURL(t)
	prefix := uniquePrefix(t, u)

	_, err := jetstream.New(nil, nil)
	require.ErrorIs(t, err, jetstream.ErrInvalidOption)

	opts := append(jetstream.ConnectOptions(5*time.Second), nats.Name("eventfold-test-caller"))
	nc, err := nats.Connect(u, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	mine := make(chan *nats.Msg, 1)
	sub, err := nc.ChanSubscribe(prefix+"mine", mine)
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()
	// A request makes the connection's own subscription for replies
	// (nats.go's, for every request on it, until it closes): made now, it
	// is no leak of the transport's.
	_, err = nc.Request("$JS.API.INFO", nil, 5*time.Second)
	require.NoError(t, err)
	subs := nc.NumSubscriptions()
	ignore := goleak.IgnoreCurrent()

	tr, err := jetstream.New(nc, testLogger(), jetstream.WithTimeout(5*time.Second))
	require.NoError(t, err)
	b, got, stop := pingBus(t, tr, prefix)
	exercise(t, b, got)
	stop()
	require.NoError(t, tr.Close())
	assert.Equal(t, subs, nc.NumSubscriptions(), "Close ends every subscription of the transport's")
	goleak.VerifyNone(t, ignore)

	require.False(t, nc.IsClosed(), "the caller's connection stays open")
	assert.Equal(t, nats.CONNECTED, nc.Status())
	assert.True(t, sub.IsValid(), "the caller's subscriptions are not drained")
	require.NoError(t, nc.Publish(prefix+"mine", []byte("hello")))
	select {
	case m := <-mine:
		assert.Equal(t, "hello", string(m.Data))
	case <-time.After(wait):
		t.Fatal("the caller's subscription received nothing after Close")
	}
}
