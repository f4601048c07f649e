package esdbbus

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/eventstoredb"
)

// ErrInvalidOption means New was given an invalid option.
var ErrInvalidOption = errors.New("esdbbus: invalid option")

// ErrClosed is returned by Subscribe and Publish after Close.
var ErrClosed = errors.New("esdbbus: transport closed")

// Source is what a topic's subscribers read: a stream, or `$all` with a
// filter.
type Source struct {
	// Stream is the stream, or eventstoredb.AllStream.
	Stream string
	// Filter selects the events of `$all`; nil for every event (system
	// events included).
	Filter *es.Filter
}

// StreamPrefixes is the Source of the events of `$all` whose stream name
// starts with one of prefixes ("order-" for the streams of orders).
func StreamPrefixes(prefixes ...string) Source {
	return Source{Stream: eventstoredb.AllStream, Filter: &es.Filter{On: es.FilterStreamName, Prefixes: prefixes}}
}

// Option configures a Transport.
type Option func(*config) error

type config struct {
	logger    *slog.Logger
	settings  eventstoredb.GroupSettings
	sources   map[string]Source
	buffer    int
	retryWait time.Duration
}

// WithLogger sets the logger of the subscriptions' errors; slog.Default()
// by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithGroupSettings sets the settings of the groups the subscribers create
// when missing (see [eventstoredb.GroupSettings]; its Filter is the
// source's, not this one's). The default is EventStoreDB's settings, round
// robin, from the beginning of the source.
func WithGroupSettings(s eventstoredb.GroupSettings) Option {
	return func(c *config) error {
		if s.Filter != nil {
			return fmt.Errorf("%w: group settings with a filter: give it with WithSource", ErrInvalidOption)
		}
		c.settings = s
		return nil
	}
}

// WithSource makes the subscribers of topic read src instead of the stream
// named topic: the events of the domain from `$all` ([StreamPrefixes]) or
// a category stream, for example. Publishing to topic still appends to
// the stream named topic.
func WithSource(topic string, src Source) Option {
	return func(c *config) error {
		if topic == "" || src.Stream == "" {
			return fmt.Errorf("%w: source %q of topic %q", ErrInvalidOption, src.Stream, topic)
		}
		if src.Filter != nil && src.Stream != eventstoredb.AllStream {
			return fmt.Errorf("%w: topic %q: a filter needs %s", ErrInvalidOption, topic, eventstoredb.AllStream)
		}
		c.sources[topic] = src
		return nil
	}
}

// WithBufferSize sets how many messages the server hands each subscription
// before it waits for acks (10 by default).
func WithBufferSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: buffer size %d", ErrInvalidOption, n)
		}
		c.buffer = n
		return nil
	}
}

// WithRetryWait sets how long a subscriber waits before it starts over
// after its Store gave up resubscribing (5s by default).
func WithRetryWait(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: retry wait %v", ErrInvalidOption, d)
		}
		c.retryWait = d
		return nil
	}
}

// Transport is a bus transport on EventStoreDB: a [Publisher] and a
// [Subscriber] per consumer.
type Transport struct {
	store *eventstoredb.Store
	cfg   config
	pub   *Publisher

	mu     sync.Mutex
	closed bool
	subs   []*Subscriber
}

// New returns a transport on store, which the caller still owns: close it
// after the transport. Problems with the options are reported together,
// wrapping [ErrInvalidOption].
func New(store *eventstoredb.Store, opts ...Option) (*Transport, error) {
	cfg := config{logger: slog.Default(), sources: map[string]Source{}, buffer: 10, retryWait: 5 * time.Second}
	var errs []error
	if store == nil {
		errs = append(errs, fmt.Errorf("%w: nil store", ErrInvalidOption))
	}
	for _, opt := range opts {
		errs = append(errs, opt(&cfg))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Transport{store: store, cfg: cfg, pub: NewPublisher(store)}, nil
}

// Options returns the bus options that run a bus on the transport.
func (t *Transport) Options() []bus.Option {
	return []bus.Option{bus.WithTransport(t.pub, t.SubscriberFactory)}
}

// Publisher returns the transport's publisher.
func (t *Transport) Publisher() *Publisher { return t.pub }

// SubscriberFactory returns the subscriber of consumer, for
// [bus.WithTransport]: its subscriptions are consumers of the group named
// consumer on each topic's source.
func (t *Transport) SubscriberFactory(consumer string) (message.Subscriber, error) {
	return t.Subscriber(consumer)
}

// Subscriber returns a subscriber whose subscriptions consume the group
// named group on each topic's source.
func (t *Transport) Subscriber(group string) (*Subscriber, error) {
	if group == "" {
		return nil, fmt.Errorf("%w: empty group name", ErrInvalidOption)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	s := &Subscriber{t: t, group: group, done: make(chan struct{})}
	t.subs = append(t.subs, s)
	return s, nil
}

// Close closes every subscriber the transport made and waits for their
// goroutines. Call it after the bus has stopped.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// source returns the source of topic.
func (t *Transport) source(topic string) Source {
	if src, ok := t.cfg.sources[topic]; ok {
		return src
	}
	return Source{Stream: topic}
}

// isReplies reports whether a consumer is a bus's replies, which live as
// long as their bus instance.
func isReplies(group string) bool { return strings.HasPrefix(group, "replies-") }

// Publisher appends Watermill messages to EventStoreDB streams. It needs
// only [es.Store]'s Append, so it publishes to any store.
type Publisher struct {
	store es.Store
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a publisher to store.
func NewPublisher(store es.Store) *Publisher { return &Publisher{store: store} }

// Publish appends msgs to the stream named topic, in one append (all or
// none), with any expected revision; when some of them were written
// before, one by one. The append is bounded by the store's
// call timeout and by the context of the first message. Publishing the
// same messages again (the same UUIDs, in the same order) writes nothing:
// EventStoreDB appends are idempotent by event ID.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := es.ValidateStreamName(topic); err != nil {
		return fmt.Errorf("esdbbus: publish: %w", err)
	}
	events := make([]es.EventData, len(msgs))
	for i, msg := range msgs {
		ev, err := toEvent(msg)
		if err != nil {
			return err
		}
		events[i] = ev
	}
	ctx := msgs[0].Context()
	_, err := p.store.Append(ctx, topic, es.Any, events...)
	if errors.Is(err, es.ErrWrongExpectedVersion) && len(events) > 1 {
		// Some of the events were written before, others not (a relay
		// publishing again after a crash, with more): EventStoreDB takes
		// an append of any revision as a repeat only if every event
		// matches. Each event alone is either a repeat or new.
		for _, ev := range events {
			if _, err = p.store.Append(ctx, topic, es.Any, ev); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("esdbbus: publish to %s: %w", topic, err)
	}
	return nil
}

// Close does nothing: the store is its owner's to close.
func (p *Publisher) Close() error { return nil }
