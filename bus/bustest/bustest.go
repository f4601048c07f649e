package bustest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventfold/eventfold/bus"
)

// Transport is a Watermill Pub/Sub for one test of the suite, as given to
// [bus.WithTransport] (and [bus.WithReplyTransport]).
type Transport struct {
	// Publisher publishes every message of the buses. Required. The
	// suite does not close it: register its Close with t.Cleanup.
	Publisher message.Publisher
	// Subscribers returns the subscriber of each consumer. Required.
	Subscribers bus.SubscriberFactory
	// ReplyPublisher and ReplySubscribers, if both set, carry the replies
	// to requests on a Pub/Sub of their own ([bus.WithReplyTransport]).
	ReplyPublisher   message.Publisher
	ReplySubscribers bus.SubscriberFactory
	// TopicPrefix is the prefix of every topic of the test's buses
	// ([bus.WithTopicPrefix]), unique to the test so that tests that share
	// a broker never see each other's messages; the transport's cleanup
	// may delete what the test left under it. [UniquePrefix] makes one;
	// empty means one of the suite's.
	TopicPrefix string
}

// Features says what a transport guarantees beyond the minimum (each
// consumer gets every message of its topics, at least once). The zero
// value claims nothing more; the suite then checks less.
type Features struct {
	// GuaranteedOrder: a consumer receives the messages of a topic in the
	// order of their publication, as event handler groups need to handle
	// the relay's events in order. Without it, the suite checks that every
	// event arrives, in any order.
	GuaranteedOrder bool
	// ConcurrentHandling: the subscriptions of different topics (the
	// topics of one command type, bus.WithCommandConcurrency) deliver
	// their messages at the same time. watermill-sql's PostgreSQL schema
	// does not: it shows no new message while a subscriber's transaction
	// is open. Without it, the suite checks only that the commands of
	// every topic are handled.
	ConcurrentHandling bool
}

// Wait bounds every wait of the suite: generous, for brokers on a busy
// machine; nothing waits for it unless something is broken.
const Wait = 30 * time.Second

// UniquePrefix returns a topic prefix unique to the call: a letter, 22
// lowercase letters and digits, and '-'.
func UniquePrefix() string { return "t" + strings.ToLower(watermill.NewShortUUID()) + "-" }

// Run runs the suite: each subtest calls newTransport for a transport of
// its own (which may call t.Skip, for example when the server's address is
// not set, and registers its cleanup with t.Cleanup), runs one or more
// buses on it, and checks them against features.
func Run(t *testing.T, newTransport func(t *testing.T) Transport, features Features) {
	t.Helper()
	s := &suite{newTransport: newTransport, features: features}
	for _, c := range []struct {
		name string
		test func(t *testing.T)
	}{
		{"SendReachesHandler", s.testSendReachesHandler},
		{"RequestReturnsResult", s.testRequestReturnsResult},
		{"ConcurrentRequests", s.testConcurrentRequests},
		{"CommandConcurrency", s.testCommandConcurrency},
		{"DomainErrorIdentity", s.testDomainErrorIdentity},
		{"RequestTimeout", s.testRequestTimeout},
		{"NoHandler", s.testNoHandler},
		{"DuplicateHandlers", s.testDuplicateHandlers},
		{"UnknownTypesAcked", s.testUnknownTypesAcked},
		{"SharedCommandTopic", s.testSharedCommandTopic},
		{"UndecodableToPoisonQueue", s.testUndecodableToPoisonQueue},
		{"UndecodableDropped", s.testUndecodableDropped},
		{"PanicRecoveredRetriedPoisoned", s.testPanicRecoveredRetriedPoisoned},
		{"PanicDropped", s.testPanicDropped},
		{"MetadataChain", s.testMetadataChain},
		{"TraceChain", s.testTraceChain},
		{"IdempotentAcrossRestart", s.testIdempotentAcrossRestart},
		{"RelayWithIDs", s.testRelayWithIDs},
	} {
		t.Run(c.name, c.test)
	}
}

type suite struct {
	newTransport func(t *testing.T) Transport
	features     Features
}

// transport returns a transport for the test t.
func (s *suite) transport(t *testing.T) Transport {
	t.Helper()
	tr := s.newTransport(t)
	if tr.Publisher == nil || tr.Subscribers == nil {
		t.Fatal("bustest: the transport has no Publisher or no Subscribers")
	}
	if tr.TopicPrefix == "" {
		tr.TopicPrefix = UniquePrefix()
	}
	return tr
}

// logger returns the buses' logger: a text logger on stderr when
// EVENTFOLD_TEST_VERBOSE is set, else nothing.
func logger() *slog.Logger {
	if os.Getenv("EVENTFOLD_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// bus returns a bus on tr with fast retries, for the suite's domain.
func (s *suite) bus(t *testing.T, tr Transport, opts ...bus.Option) *bus.Bus {
	t.Helper()
	all := append([]bus.Option{
		bus.WithTransport(tr.Publisher, tr.Subscribers),
		bus.WithTopicPrefix(tr.TopicPrefix),
		bus.WithLogger(logger()),
		bus.WithRetry(3, 5*time.Millisecond, 20*time.Millisecond),
		bus.WithErrors(errInsufficientFunds),
	}, opts...)
	if tr.ReplyPublisher != nil && tr.ReplySubscribers != nil {
		all = append(all, bus.WithReplyTransport(tr.ReplyPublisher, tr.ReplySubscribers))
	}
	b, err := bus.New(commandTypes(), eventTypes(), all...)
	if err != nil {
		t.Fatalf("bus.New: %v", err)
	}
	return b
}

// Start runs b until the test ends or stop is called, and returns once b
// runs. It fails the test if b does not run or stop within [Wait], or if
// Run fails.
func Start(t testing.TB, b *bus.Bus) (stop func()) {
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
			case <-time.After(Wait):
				t.Errorf("the bus did not stop within %v", Wait)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-b.Running():
	case err := <-done:
		t.Fatalf("Run returned before running: %v", err)
	case <-time.After(Wait):
		t.Fatalf("the bus did not run within %v", Wait)
	}
	return stop
}

// recv returns the next value of ch, failing the test if none comes.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Wait):
		t.Fatalf("nothing received within %v", Wait)
		panic("unreachable")
	}
}

// subscribe subscribes the test to topic on tr, acknowledging what it
// receives.
func subscribe(t *testing.T, tr Transport, topic string) <-chan *message.Message {
	t.Helper()
	sub, err := tr.Subscribers("test-" + strings.TrimSuffix(tr.TopicPrefix, "-"))
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(func() {
		cancel()
		_ = sub.Close()
	})
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", topic, err)
	}
	out := make(chan *message.Message, 10)
	go func() {
		for m := range msgs {
			m.Ack()
			out <- m
		}
	}()
	return out
}
