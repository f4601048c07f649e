// Package jetstream runs a bus on NATS JetStream: commands and events on
// JetStream streams, each consumer (a command handler, an event handler
// group) on a durable consumer of its own, and the replies to requests on
// core NATS, which keeps no stream for them.
//
//	t, err := jetstream.New("nats://localhost:4222", logger)
//	if err != nil {
//		return err
//	}
//	defer t.Close()
//	b, err := bus.New(commands, events, t.Options()...)
//
// # De-duplication
//
// Every message is published with its Watermill UUID as its JetStream
// message ID (the Nats-Msg-Id header). For relayed events that UUID is the
// event's ID, so JetStream drops a redelivery of the relay (after a crash
// between a publication and its checkpoint) that arrives within the
// stream's duplicate window: 2 minutes, the server's default for the
// streams the transport makes. Later redeliveries still reach the
// consumers: keep their handlers idempotent ([bus.Idempotent]).
//
// # Outages
//
// Every call into NATS has a deadline ([WithTimeout], 5s by default): a
// publication, the creation of a stream or a consumer, an acknowledgement,
// a connection. A stalled connection therefore fails the calls in flight
// instead of hanging them, and a publication ends early when the context
// of its messages is done (the relay's). The connections reconnect for
// ever, and notice a dead peer within a few pings (a few seconds); the
// durable consumers resume where they were. A publication that fails is
// the relay's to retry ([bus.Relay.Publish] wraps the error with
// projection.ErrUnavailable): JetStream drops the copies it already has.
//
// # Lifetime
//
// The Transport owns its connections: Close closes its publishers and
// every subscriber it made, after the bus has stopped.
//
// # Leftovers
//
// A deployment's streams stay on the server when its services stop, with
// the messages their consumers have not acknowledged. [Transport.Streams]
// lists the streams of a bus's topics ([bus.Bus.TopicPrefix]) with what
// each consumer has pending, and [Transport.DeleteStreams] deletes them.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventfold/eventfold/bus"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// ErrInvalidOption means New was given an invalid option, or a call an
// invalid argument.
var ErrInvalidOption = errors.New("jetstream: invalid option")

// Transport is a bus transport on NATS JetStream. Create it with New.
type Transport struct {
	url    string
	logger watermill.LoggerAdapter
	cfg    config

	nc       *nats.Conn // the publisher's, and the admin calls'
	js       njs.JetStream
	pub      *publisher
	replyPub message.Publisher

	mu   sync.Mutex
	subs []message.Subscriber
}

type config struct {
	timeout time.Duration
	ackWait time.Duration
}

// Option configures a Transport.
type Option func(*config) error

// DefaultTimeout bounds every call into NATS unless [WithTimeout] says
// otherwise.
const DefaultTimeout = 5 * time.Second

// WithTimeout bounds every call into NATS: a publication (each message),
// the creation of a stream or a consumer, an acknowledgement, a connection
// ([DefaultTimeout] by default).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithAckWait sets how long JetStream waits for a consumer to acknowledge
// a message before it delivers the message again (30s by default): a
// message that a stopping bus left unacknowledged, or nacked, is delivered
// again after it. The durable consumers are created with it; an existing consumer
// keeps the setting it was created with.
func WithAckWait(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: ack wait %v", ErrInvalidOption, d)
		}
		c.ackWait = d
		return nil
	}
}

// The connections' settings for outages: ping often enough to notice a
// stalled or dead connection within seconds, reconnect for ever.
const (
	pingInterval  = 2 * time.Second
	maxPingsOut   = 2
	reconnectWait = 250 * time.Millisecond
)

// New connects to the NATS server at url. logger receives Watermill's
// messages; nil discards them. Problems with the options are reported
// together, wrapping [ErrInvalidOption].
func New(url string, logger *slog.Logger, opts ...Option) (*Transport, error) {
	cfg := config{timeout: DefaultTimeout, ackWait: 30 * time.Second}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(&cfg))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Transport{url: url, logger: watermill.NewSlogLogger(logger), cfg: cfg}
	var err error
	if t.nc, err = nats.Connect(url, t.natsOptions()...); err != nil {
		return nil, fmt.Errorf("jetstream: connect: %w", err)
	}
	if t.js, err = njs.New(t.nc); err != nil {
		t.nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	t.pub = &publisher{js: t.js, timeout: cfg.timeout, known: make(map[string]bool)}
	t.replyPub, err = wnats.NewPublisher(wnats.PublisherConfig{URL: url, Marshaler: &wnats.NATSMarshaler{},
		JetStream: wnats.JetStreamConfig{Disabled: true}, NatsOptions: t.natsOptions()}, t.logger)
	if err != nil {
		t.nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return t, nil
}

// natsOptions are the options of every connection the transport makes.
func (t *Transport) natsOptions() []nats.Option {
	return []nats.Option{nats.Timeout(t.cfg.timeout), nats.MaxReconnects(-1), nats.ReconnectWait(reconnectWait),
		nats.PingInterval(pingInterval), nats.MaxPingsOutstanding(maxPingsOut), nats.DrainTimeout(t.cfg.timeout)}
}

// streams is the JetStream configuration of the subscribers of commands
// and events: streams made on demand, every call bounded by the timeout,
// acknowledgements sent without waiting for the server's answer (they
// then leave with the connection's last flush when a stopping bus closes
// it; a lost one means a redelivery).
func (t *Transport) streams() wnats.JetStreamConfig {
	return wnats.JetStreamConfig{AutoProvision: true, TrackMsgId: true, AckAsync: true,
		ConnectOptions: []nats.JSOpt{nats.MaxWait(t.cfg.timeout)}}
}

// Options returns the bus options that run a bus on the transport.
func (t *Transport) Options() []bus.Option {
	return []bus.Option{
		bus.WithTransport(t.pub, t.subscriber),
		bus.WithReplyTransport(t.replyPub, t.replySubscriber),
	}
}

// CommandSubscribers is how many commands of one type a Transport's
// subscriber handles at once: the consumers of commands are queue groups of
// this many subscriptions on one durable consumer, so that concurrent
// requests do not queue behind one handler (a command's sender waits for
// its reply, so no sender's commands are reordered). Event handler groups
// keep one subscription each, and their order.
const CommandSubscribers = 16

// subscriber returns the subscriber of one consumer: a durable consumer
// named after it, which delivers every message of its topic once; for the
// consumers of commands (named "command-…" by the bus), a queue group of
// CommandSubscribers subscriptions on one durable consumer.
func (t *Transport) subscriber(consumer string) (message.Subscriber, error) {
	js := t.streams()
	js.DurablePrefix = consumer
	js.DurableCalculator = func(prefix, topic string) string { return prefix + "_" + topic }
	// ManualAck: nats.go acknowledges a message when the callback returns
	// unless told otherwise, and watermill-nats's callback returns without
	// an acknowledgement when it gives up on a message (a stopping bus, an
	// ack timeout): nats.go would acknowledge it, and it would be lost.
	js.SubscribeOptions = []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit(), nats.AckWait(t.cfg.ackWait), nats.ManualAck()}
	cfg := t.config(js)
	queue := ""
	if strings.HasPrefix(consumer, "command-") {
		// A queue group needs a durable consumer made for one (with a
		// deliver group): its name differs from the single subscription's.
		js.DurableCalculator = func(prefix, topic string) string { return prefix + "_q_" + topic }
		cfg = t.config(js)
		cfg.QueueGroupPrefix, cfg.SubscribersCount = consumer, CommandSubscribers
		queue = consumer
	}
	sub, err := wnats.NewSubscriber(cfg, t.logger)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	t.mu.Lock()
	t.subs = append(t.subs, sub)
	t.mu.Unlock()
	return durableSubscriber{Subscriber: sub, t: t, queue: queue,
		name: func(topic string) string { return js.DurableCalculator(consumer, topic) }}, nil
}

// durableSubscriber makes its durable consumer before it subscribes.
// nats.go deletes a consumer that its Subscribe created when the
// subscription ends, durable or not; it keeps one that it found. Made
// here, the consumer outlives the bus: its position and the messages it
// has not acknowledged stay on the server for the next run (or for
// draining).
type durableSubscriber struct {
	*wnats.Subscriber
	t     *Transport
	name  func(topic string) string
	queue string
}

func (d durableSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := d.t.ensureConsumer(ctx, topic, d.name(topic), d.queue); err != nil {
		return nil, fmt.Errorf("jetstream: consumer of %s: %w", topic, err)
	}
	return d.Subscriber.Subscribe(ctx, topic)
}

// ensureConsumer makes the stream of topic and its durable push consumer
// name, delivering to a queue group if queue is not empty, unless they
// exist.
func (t *Transport) ensureConsumer(ctx context.Context, topic, name, queue string) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.timeout)
	defer cancel()
	if err := t.pub.ensureStream(ctx, topic); err != nil {
		return err
	}
	js, err := t.nc.JetStream()
	if err != nil {
		return err
	}
	_, err = js.ConsumerInfo(topic, name, nats.Context(ctx))
	if !errors.Is(err, nats.ErrConsumerNotFound) {
		return err
	}
	_, err = js.AddConsumer(topic, &nats.ConsumerConfig{
		Durable: name, DeliverSubject: nats.NewInbox(), DeliverGroup: queue,
		AckPolicy: nats.AckExplicitPolicy, DeliverPolicy: nats.DeliverAllPolicy, AckWait: t.cfg.ackWait,
	}, nats.Context(ctx))
	if err != nil {
		// Made meanwhile by another process?
		if _, ierr := js.ConsumerInfo(topic, name, nats.Context(ctx)); ierr == nil {
			return nil
		}
	}
	return err
}

// replySubscriber returns a core NATS subscriber for a bus's replies.
func (t *Transport) replySubscriber(string) (message.Subscriber, error) {
	return t.keep(wnats.NewSubscriber(t.config(wnats.JetStreamConfig{Disabled: true}), t.logger))
}

func (t *Transport) config(js wnats.JetStreamConfig) wnats.SubscriberConfig {
	return wnats.SubscriberConfig{
		URL:              t.url,
		NatsOptions:      t.natsOptions(),
		SubscribersCount: 1,
		CloseTimeout:     5 * time.Second,
		AckWaitTimeout:   t.cfg.ackWait,
		// The bus nacks a message only while it stops: delivered again at
		// once, it would reach the stopping subscription.
		NakDelay:         wnats.NewStaticDelay(t.cfg.ackWait),
		SubscribeTimeout: 10 * time.Second,
		Unmarshaler:      &wnats.NATSMarshaler{},
		JetStream:        js,
	}
}

// keep records a subscriber for Close.
func (t *Transport) keep(sub *wnats.Subscriber, err error) (message.Subscriber, error) {
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	t.mu.Lock()
	t.subs = append(t.subs, sub)
	t.mu.Unlock()
	return sub, nil
}

// Close closes the publishers and every subscriber the transport made
// (closing one the bus closed already does nothing). Call it after the bus
// has stopped.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	errs := []error{t.replyPub.Close()}
	for _, s := range t.subs {
		errs = append(errs, s.Close())
	}
	t.subs = nil
	t.nc.Close()
	return errors.Join(errs...)
}
