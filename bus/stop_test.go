package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// runUntil runs b until the returned cancel is called, and returns once b
// runs; done receives Run's result.
func runUntil(t *testing.T, b *bus.Bus) (cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ch, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		ch <- b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(wait):
			t.Errorf("the bus did not stop within %v", wait)
		}
	})
	select {
	case <-b.Running():
	case err := <-ch:
		t.Fatalf("Run returned before running: %v", err)
	case <-time.After(wait):
		t.Fatalf("the bus did not run within %v", wait)
	}
	return cancel, ch
}

// awaitStopping polls until b refuses commands, as a stopping bus does.
// The command is Unhandled: declared remote (bus.WithRemoteCommands), and
// handled nowhere, so that a send returns at once while b runs.
func awaitStopping(t *testing.T, b *bus.Bus) {
	t.Helper()
	require.Eventually(t, func() bool {
		return errors.Is(b.Send(t.Context(), Unhandled{}), bus.ErrStopped)
	}, wait, time.Millisecond, "the bus did not begin to stop")
}

// A stopping bus takes no new message but lets the handlers under way
// finish with their contexts intact; Run returns once they are done.
func TestStopWaitsForHandlersUnderWay(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()), bus.WithStopTimeout(wait),
		bus.WithRemoteCommands("Unhandled"))
	require.NoError(t, err)
	defer b.Close()
	entered, release, handled := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	require.NoError(t, bus.HandleEvent(b, "slow", func(ctx context.Context, e Deposited) error {
		close(entered)
		<-release
		handled <- ctx.Err()
		return nil
	}))
	stop, done := runUntil(t, b)

	published := make(chan error, 1)
	go func() { published <- b.Publish(t.Context(), stored("MoneyDeposited", `{"amount":1}`)) }()
	recv(t, entered)
	stop()
	awaitStopping(t, b)
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) with a handler under way", err)
	default:
	}
	close(release)
	require.NoError(t, recv(t, handled), "the handler's context stays intact while the bus stops")
	require.NoError(t, recv(t, done))
	// The stop overtook the publication: on the in-process transport the
	// relay cannot tell whether every handler had the event.
	err = recv(t, published)
	require.ErrorIs(t, err, bus.ErrStopped)
	assert.Zero(t, b.Dropped())
}

// A handler that fails while the bus stops does not have its message
// dropped or sent to the poison queue: it is left to the transport.
func TestStopLeavesFailedMessagesToTransport(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, wlog())
	defer gc.Close()
	poisoned := make(chan *message.Message, 10)
	sub, err := gc.Subscribe(t.Context(), "stop-poison")
	require.NoError(t, err)
	go func() {
		for msg := range sub {
			poisoned <- msg
			msg.Ack()
		}
	}()
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()), bus.WithTransport(gc, bus.Shared(gc)),
		bus.WithTopicPrefix("stop-"), bus.WithPoisonQueue("stop-poison"), bus.WithRetry(4, time.Millisecond, time.Millisecond),
		bus.WithStopTimeout(wait), bus.WithRemoteCommands("Unhandled"))
	require.NoError(t, err)
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	require.NoError(t, bus.HandleEvent(b, "failing", func(ctx context.Context, e Deposited) error {
		if calls.Add(1) == 1 {
			close(entered)
		}
		<-release
		return errors.New("the downstream service went away with the bus")
	}))
	stop, done := runUntil(t, b)
	published := make(chan error, 1)
	go func() { published <- b.Publish(t.Context(), stored("MoneyDeposited", `{"amount":1}`)) }()
	recv(t, entered)
	stop()
	awaitStopping(t, b)
	close(release)
	require.NoError(t, recv(t, done))
	recv(t, published) // the GoChannel gives up on the message
	require.NoError(t, b.Close())
	assert.Zero(t, b.Dropped(), "nothing dropped")
	assert.EqualValues(t, 1, calls.Load(), "no retry once the bus stops")
	select {
	case msg := <-poisoned:
		t.Fatalf("message %s went to the poison queue", msg.UUID)
	default:
	}
}

// Handlers that outlast the stop timeout have their contexts cancelled:
// Run returns within the timeout, and their messages are not dropped.
func TestStopTimeoutCancelsHandlers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const timeout = 200 * time.Millisecond
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()), bus.WithStopTimeout(timeout))
	require.NoError(t, err)
	defer b.Close()
	entered, handled := make(chan struct{}), make(chan error, 1)
	require.NoError(t, bus.HandleEvent(b, "stubborn", func(ctx context.Context, e Deposited) error {
		close(entered)
		<-ctx.Done()
		handled <- ctx.Err()
		return ctx.Err()
	}))
	stop, done := runUntil(t, b)
	published := make(chan error, 1)
	go func() { published <- b.Publish(t.Context(), stored("MoneyDeposited", `{"amount":1}`)) }()
	recv(t, entered)
	start := time.Now()
	stop()
	require.NoError(t, recv(t, done))
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, timeout, "the handler was waited for")
	assert.Less(t, elapsed, timeout+5*time.Second, "Run returned soon after the stop timeout")
	require.ErrorIs(t, recv(t, handled), context.Canceled)
	require.ErrorIs(t, recv(t, published), bus.ErrStopped)
	assert.Zero(t, b.Dropped())
}

// failingPublisher fails while down, as a broker away does.
type failingPublisher struct {
	message.Publisher
	down atomic.Bool
}

var errBrokerAway = errors.New("broker away")

func (p *failingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.down.Load() {
		return errBrokerAway
	}
	return p.Publisher.Publish(topic, msgs...)
}

// relayRunner returns a restarting relay runner over store that publishes
// to b, and its dead letters.
func relayRunner(t *testing.T, store es.Store, b *bus.Bus) (*projection.Runner[projection.NoTx], *projection.MemoryCheckpoints) {
	t.Helper()
	dead := new(projection.MemoryCheckpoints)
	r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Relay(b.Publish), projection.WithRetry(2, time.Millisecond), projection.WithRestart(5*time.Millisecond, 20*time.Millisecond),
		projection.WithSkipPoison(dead), projection.WithLogger(testLogger()))
	require.NoError(t, err)
	return r, dead
}

// runRunner runs r until the test ends.
func runRunner(t *testing.T, r *projection.Runner[projection.NoTx]) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(wait):
			t.Errorf("the runner did not stop within %v", wait)
		}
	})
}

// awaitRestarting polls r's status until it restarts after a failure, and
// returns the failure.
func awaitRestarting(t *testing.T, r *projection.Runner[projection.NoTx]) error {
	t.Helper()
	var failure error
	require.Eventually(t, func() bool {
		st, err := r.Status(t.Context())
		require.NoError(t, err)
		failure = st.Err
		return st.State == projection.StateRestarting && st.Err != nil
	}, wait, time.Millisecond, "the relay did not fail and restart")
	return failure
}

func appendDeposits(t *testing.T, store es.Store, n int) es.Position {
	t.Helper()
	var last es.Position
	for i := range n {
		res, err := store.Append(t.Context(), "account-1", es.Any,
			es.EventData{Type: "MoneyDeposited", Data: fmt.Appendf(nil, `{"amount":%d}`, i+1)})
		require.NoError(t, err)
		last = res.Position
	}
	return last
}

// The relay's publication fails while the broker is away: the runner
// retries, fails and restarts, blames no event, and delivers everything
// once the broker is back.
func TestRelayTransportFailureIsUnavailable(t *testing.T) {
	gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, wlog())
	defer gc.Close()
	pub := &failingPublisher{Publisher: gc}
	pub.down.Store(true)
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()), bus.WithTransport(pub, bus.Shared(gc)),
		bus.WithReplyTransport(gc, bus.Shared(gc)), bus.WithTopicPrefix("away-"))
	require.NoError(t, err)
	defer b.Close()
	var mu sync.Mutex
	var got []int
	require.NoError(t, bus.HandleEvent(b, "sum", func(ctx context.Context, e Deposited) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e.Amount)
		return nil
	}))
	run(t, b)

	store := memstore.MustNew()
	last := appendDeposits(t, store, 3)
	r, dead := relayRunner(t, store, b)
	runRunner(t, r)
	failure := awaitRestarting(t, r)
	require.ErrorIs(t, failure, projection.ErrUnavailable)
	require.ErrorIs(t, failure, errBrokerAway)
	assert.NotErrorIs(t, failure, projection.ErrPoisonEvent)

	pub.down.Store(false)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	require.NoError(t, r.WaitFor(ctx, last))
	letters, err := dead.DeadLetters(t.Context(), "relay")
	require.NoError(t, err)
	assert.Empty(t, letters, "no event is blamed for the broker's outage")
	mu.Lock()
	assert.Equal(t, []int{1, 2, 3}, got)
	mu.Unlock()
}

// Publishing into an in-process bus that has stopped is an error, never
// a success that would let the relay's checkpoint pass the events.
func TestRelayIntoStoppedBusIsUnavailable(t *testing.T) {
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()))
	require.NoError(t, err)
	var handled atomic.Int32
	require.NoError(t, bus.HandleEvent(b, "count", func(ctx context.Context, e Deposited) error {
		handled.Add(1)
		return nil
	}))
	stop, done := runUntil(t, b)
	stop()
	require.NoError(t, recv(t, done))

	err = b.Publish(t.Context(), stored("MoneyDeposited", `{"amount":1}`))
	require.ErrorIs(t, err, bus.ErrStopped)

	store := memstore.MustNew()
	appendDeposits(t, store, 2)
	r, dead := relayRunner(t, store, b)
	runRunner(t, r)
	failure := awaitRestarting(t, r)
	require.ErrorIs(t, failure, projection.ErrUnavailable)
	require.ErrorIs(t, failure, bus.ErrStopped)
	st, err := r.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, es.Start, st.Checkpoint, "the checkpoint does not pass events nobody handled")
	letters, err := dead.DeadLetters(t.Context(), "relay")
	require.NoError(t, err)
	assert.Empty(t, letters)
	assert.Zero(t, handled.Load())

	require.NoError(t, b.Close())
	err = b.Publish(t.Context(), stored("MoneyDeposited", `{"amount":1}`))
	require.ErrorIs(t, err, bus.ErrStopped, "after Close too")
}

// A bus closed before it ran refuses at once instead of waiting for it to
// run.
func TestClosedBeforeRunIsStopped(t *testing.T) {
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()))
	require.NoError(t, err)
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { return nil }))
	require.NoError(t, b.Close())
	require.ErrorIs(t, b.Send(t.Context(), Deposit{ID: "1"}), bus.ErrStopped)
	require.ErrorIs(t, b.Publish(t.Context(), stored("MoneyDeposited", `{}`)), bus.ErrStopped)
}

func TestNamespace(t *testing.T) {
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithNamespace("d-42"), bus.WithTopicPrefix("app-"))
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, "app-d-42-", b.TopicPrefix())
	for _, bad := range []string{"", "a.b", "a b", "a*", "a>", "a/b", strings.Repeat("a", bus.MaxNamespaceLength+1)} {
		_, err := bus.New(commandTypes(), eventTypes(), bus.WithNamespace(bad))
		require.ErrorIs(t, err, bus.ErrInvalidOption, "%q", bad)
		assert.ErrorContains(t, err, "namespace")
	}
}
