package jetstream_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/bustest"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

type Ping struct {
	N int `json:"n"`
}

type Pong struct {
	N int `json:"n"`
}

type Pinged struct {
	N int `json:"n"`
}

// newBus returns a bus on NATS JetStream with the commands Ping and the
// events Pinged, on topics of its own (deleted at the end of the test),
// its transport and the prefix of its topics. It skips the test without EVENTFOLD_TEST_NATS, and
// checks at the end that no goroutine is left.
func newBus(t *testing.T) (b *bus.Bus, tr *jetstream.Transport, prefix string) {
	t.Helper()
	url := os.Getenv("EVENTFOLD_TEST_NATS")
	if url == "" {
		t.Skip("EVENTFOLD_TEST_NATS is not set: no NATS JetStream to run the bus on")
	}
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	prefix = "js" + strings.ReplaceAll(uuid.NewString()[:8], "-", "") + "-"
	t.Cleanup(func() { deleteStreams(t, url, prefix) })

	tr, err := jetstream.Open(url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	commands, err := es.NewRegistry(es.Type[Ping]("Ping"))
	require.NoError(t, err)
	events, err := es.NewRegistry(es.Type[Pinged]("Pinged"))
	require.NoError(t, err)
	b, err = bus.New(commands, events, append(tr.Options(), bus.WithTopicPrefix(prefix))...)
	require.NoError(t, err)
	return b, tr, prefix
}

// TestBusSuite runs the bus's transport suite (package bustest) on a
// Transport, each subtest on a connection and topics of its own.
func TestBusSuite(t *testing.T) {
	url := os.Getenv("EVENTFOLD_TEST_NATS")
	if url == "" {
		t.Skip("EVENTFOLD_TEST_NATS is not set: no NATS JetStream to run the bus's transport suite on")
	}
	bustest.Run(t, func(t *testing.T) bustest.Transport {
		prefix := bustest.UniquePrefix()
		t.Cleanup(func() { deleteStreams(t, url, prefix) })
		tr, err := jetstream.Open(url, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		return tr.BusTransport(prefix)
	}, bustest.Features{GuaranteedOrder: true, ConcurrentHandling: true})
}

func TestBusOnJetStream(t *testing.T) {
	b, tr, _ := newBus(t)
	require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, p Ping) (Pong, error) { return Pong(p), nil }))

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Running():
	case <-time.After(20 * time.Second):
		t.Fatal("the bus did not start")
	}
	for i := range 3 {
		pong, err := bus.Request[Pong](ctx, b, Ping{N: i})
		require.NoError(t, err)
		assert.Equal(t, i, pong.N)
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, b.Close())
	require.NoError(t, tr.Close(), "the transport closes what it made")
}

// TestRedeliveryIsDeduplicated publishes the same stored event twice, as the
// relay does after a crash between a publication and its checkpoint: with
// the event ID as JetStream message ID, the stream keeps it once and the
// handler sees it once.
func TestRedeliveryIsDeduplicated(t *testing.T) {
	b, tr, prefix := newBus(t)
	seen := make(chan es.RecordedEvent, 10)
	require.NoError(t, bus.HandleEvent(b, "counter", func(ctx context.Context, _ Pinged) error {
		rec, _ := bus.EventFromContext(ctx)
		seen <- rec
		return nil
	}))

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Running():
	case <-time.After(20 * time.Second):
		t.Fatal("the bus did not start")
	}

	event := func(n int) es.RecordedEvent {
		return es.RecordedEvent{
			ID: uuid.New(), Stream: "ping-1", Revision: uint64(n), Type: "Pinged", ContentType: es.ContentTypeJSON,
			Data: []byte(`{"n":` + strconv.Itoa(n) + `}`), Position: es.Position{Commit: uint64(n + 1), Prepare: uint64(n + 1)},
		}
	}
	first, marker := event(0), event(1)
	require.NoError(t, b.Publish(ctx, first))
	require.NoError(t, b.Publish(ctx, first), "a redelivery is accepted, and dropped by JetStream")
	require.NoError(t, b.Publish(ctx, marker))

	// The stream holds each event once.
	nc, err := nats.Connect(os.Getenv("EVENTFOLD_TEST_NATS"))
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	var msgs uint64
	for name := range js.StreamNames() {
		if strings.HasPrefix(name, prefix) {
			info, err := js.StreamInfo(name)
			require.NoError(t, err)
			msgs += info.State.Msgs
		}
	}
	assert.Equal(t, uint64(2), msgs, "the redelivery is not stored")

	// The handler sees the first event, then the marker, published after
	// the redelivery: nothing in between.
	var got []uuid.UUID
	for len(got) < 2 {
		select {
		case rec := <-seen:
			got = append(got, rec.ID)
		case <-time.After(20 * time.Second):
			t.Fatalf("the handler saw %v, want %v then %v", got, first.ID, marker.ID)
		}
	}
	assert.Equal(t, []uuid.UUID{first.ID, marker.ID}, got)

	cancel()
	require.NoError(t, <-done)
	require.NoError(t, b.Close())
	require.NoError(t, tr.Close())
}

// deleteStreams deletes the JetStream streams of the topics with prefix.
func deleteStreams(t *testing.T, url, prefix string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return
	}
	for name := range js.StreamNames() {
		if strings.HasPrefix(name, prefix) {
			_ = js.DeleteStream(name)
		}
	}
}

// TestCommandsConcurrentOnJetStream checks that the commands of one type
// are handled concurrently: the handler answers only once two requests are
// inside it at once. (JetStream spreads messages over the queue group's
// subscriptions without looking at which are busy, so requests may queue
// behind one another; of eight, two reach different subscriptions.)
func TestCommandsConcurrentOnJetStream(t *testing.T) {
	b, tr, _ := newBus(t)
	const k, n = 2, 8
	var (
		mu     sync.Mutex
		inside int
		all    = make(chan struct{})
	)
	require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, p Ping) (Pong, error) {
		mu.Lock()
		if inside++; inside == k {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			return Pong(p), nil
		case <-ctx.Done():
			return Pong{}, ctx.Err()
		}
	}))

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Running():
	case <-ctx.Done():
		t.Fatal("the bus did not start")
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := bus.Request[Pong](ctx, b, Ping{N: i})
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs, "every request is answered once all are handled at once")
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, b.Close())
	require.NoError(t, tr.Close())
}
