// Package jetstream runs a bus on NATS JetStream: commands and events on
// JetStream streams, each consumer (a command handler, an event handler
// group) on a durable consumer of its own, and the replies to requests on
// core NATS, which keeps no stream for them.
//
//	t, err := jetstream.Open("nats://localhost:4222", logger)
//	if err != nil {
//		return err
//	}
//	defer t.Close()
//	b, err := bus.New(commands, events, t.Options()...)
//
// # Connection
//
// [Open] dials NATS and owns the connection; [New] runs on a connection
// the caller made (with TLS, credentials, its own reconnection settings)
// and still owns, as nats.go's jetstream.New does. Either way the
// transport's publishers and subscribers (every consumer, the replies)
// share that one connection.
//
// # Replicas
//
// Every durable consumer delivers to a queue group of its name, so the
// replicas of a service (each with its transport and bus, on the same
// topics) share each consumer: a message reaches one replica. A command
// consumer has [CommandSubscribers] subscriptions per bus; an event handler
// group one, which handles its share of the events in order, while the
// events of one stream may reach two replicas at once. A durable consumer
// of an event handler group made by an earlier version, for a single
// subscription, is switched to its queue group on the next subscription.
//
// # De-duplication
//
// Every message is published with its Watermill UUID as its JetStream
// message ID (the Nats-Msg-Id header). For relayed events that UUID is the
// event's ID, so JetStream drops a redelivery of the relay (after a crash
// between a publication and its checkpoint) that arrives within the
// stream's duplicate window: 2 minutes, the server's default for the
// streams the transport makes. Later redeliveries still reach the
// consumers: keep their handlers idempotent ([bus.WithIdempotency]).
//
// # Outages
//
// Every call into NATS has a deadline ([WithTimeout], 5s by default): a
// publication, the creation of a stream or a consumer, an acknowledgement,
// the connection that [Open] makes, the flush in [Transport.Close]. A
// stalled connection therefore fails the calls in flight instead of
// hanging them, and a publication ends early when the context of its
// messages is done (the relay's). The connection that [Open] makes
// reconnects for ever, and notices a dead peer within a few pings (a few
// seconds); one given to [New] recovers as its own settings say
// ([ConnectOptions] are Open's). The durable consumers resume where they
// were. A publication that fails is the relay's to retry
// (projection.Relay wraps the error of [bus.Bus.Publish] with projection.ErrUnavailable):
// JetStream drops the copies it already has.
//
// # Lifetime
//
// Close ends every subscription the Transport made, after the bus has
// stopped, and sends what the connection still holds (acknowledgements).
// It closes the connection if [Open] made it, never one given to [New].
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

// ErrInvalidOption means Open or New was given an invalid option, or a call
// an invalid argument.
var ErrInvalidOption = errors.New("jetstream: invalid option")

// Transport is a bus transport on NATS JetStream. Create it with Open or
// New.
type Transport struct {
	logger watermill.LoggerAdapter
	cfg    config

	nc       *nats.Conn // every publisher's and subscriber's, and the admin calls'
	owned    bool       // made by Open: Close closes it
	js       njs.JetStream
	pub      *publisher
	replyPub message.Publisher // never closed: its Close would close nc

	mu   sync.Mutex
	subs []*sharedSubscriber
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
// the creation of a stream or a consumer, an acknowledgement, the
// connection that [Open] makes and the flush in [Transport.Close]
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

// The settings for outages of the connection that Open makes: ping often
// enough to notice a stalled or dead connection within seconds, reconnect
// for ever.
const (
	pingInterval  = 2 * time.Second
	maxPingsOut   = 2
	reconnectWait = 250 * time.Millisecond
)

// Open connects to the NATS server at url with [ConnectOptions] for the
// timeout of the options, and runs the transport on that one connection,
// which it owns: Close closes it. logger receives Watermill's messages; nil
// discards them. Problems with the options are reported together, wrapping
// [ErrInvalidOption].
func Open(url string, logger *slog.Logger, opts ...Option) (*Transport, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, ConnectOptions(cfg.timeout)...)
	if err != nil {
		return nil, fmt.Errorf("jetstream: connect: %w", err)
	}
	t, err := newTransport(nc, logger, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	t.owned = true
	return t, nil
}

// New runs the transport on conn, a connection to a NATS server with
// JetStream that the caller made (with the TLS, credentials and
// reconnection settings it needs; [ConnectOptions] are Open's) and still
// owns: Close ends the transport's subscriptions but leaves conn open. The
// transport's publishers and subscribers all use conn. logger receives
// Watermill's messages; nil discards them. Problems with the options are
// reported together, wrapping [ErrInvalidOption].
func New(conn *nats.Conn, logger *slog.Logger, opts ...Option) (*Transport, error) {
	cfg, err := newConfig(opts)
	if conn == nil {
		err = errors.Join(err, fmt.Errorf("%w: nil connection", ErrInvalidOption))
	}
	if err != nil {
		return nil, err
	}
	return newTransport(conn, logger, cfg)
}

func newConfig(opts []Option) (config, error) {
	cfg := config{timeout: DefaultTimeout, ackWait: 30 * time.Second}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(&cfg))
	}
	return cfg, errors.Join(errs...)
}

func newTransport(nc *nats.Conn, logger *slog.Logger, cfg config) (*Transport, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Transport{logger: watermill.NewSlogLogger(logger), cfg: cfg, nc: nc}
	var err error
	if t.js, err = njs.New(nc); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	t.pub = &publisher{js: t.js, timeout: cfg.timeout, known: make(map[string]bool)}
	t.replyPub, err = wnats.NewPublisherWithNatsConn(nc, wnats.PublisherPublishConfig{Marshaler: &wnats.NATSMarshaler{},
		SubjectCalculator: wnats.DefaultSubjectCalculator, JetStream: wnats.JetStreamConfig{Disabled: true}}, t.logger)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return t, nil
}

// ConnectOptions are the settings of the connection that [Open] makes, for
// a caller who dials its own for [New] (adding TLS or credentials):
// timeout bounds the connection and its drain ([DefaultTimeout] in Open
// unless [WithTimeout] says otherwise); it pings every 2s, counts the peer
// dead after 2 unanswered pings, and reconnects for ever, every 250ms.
func ConnectOptions(timeout time.Duration) []nats.Option {
	return []nats.Option{nats.Timeout(timeout), nats.MaxReconnects(-1), nats.ReconnectWait(reconnectWait),
		nats.PingInterval(pingInterval), nats.MaxPingsOutstanding(maxPingsOut), nats.DrainTimeout(timeout)}
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
// keep one subscription per bus, and their order within it; the replicas
// of a service share each group (see the package's Replicas).
const CommandSubscribers = 16

// subscriber returns the subscriber of one consumer: a durable consumer
// named after it, which delivers every message of its topic once to a
// queue group, shared by the replicas of a service; a bus subscribes to it
// once for an event handler group, and with CommandSubscribers
// subscriptions for the consumers of commands (named "command-…" by the
// bus).
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
	// Every consumer is a queue group on its durable consumer, so that the
	// replicas of a service share it: each message reaches one of them.
	// An event handler group has one subscription per bus, which handles
	// its share in order.
	queue := consumer
	cfg.QueueGroupPrefix = consumer
	if strings.HasPrefix(consumer, "command-") {
		// Its durable consumer was made for a queue group from the
		// start; its name differs from the single subscription's of
		// earlier versions.
		js.DurableCalculator = func(prefix, topic string) string { return prefix + "_q_" + topic }
		cfg = t.config(js)
		cfg.QueueGroupPrefix, cfg.SubscribersCount = consumer, CommandSubscribers
	}
	sub, err := t.keep(wnats.NewSubscriberWithNatsConn(t.nc, cfg, t.logger))
	if err != nil {
		return nil, err
	}
	return durableSubscriber{sharedSubscriber: sub, t: t, queue: queue,
		name: func(topic string) string { return js.DurableCalculator(consumer, topic) }}, nil
}

// durableSubscriber makes its durable consumer before it subscribes.
// nats.go deletes a consumer that its Subscribe created when the
// subscription ends, durable or not; it keeps one that it found. Made
// here, the consumer outlives the bus: its position and the messages it
// has not acknowledged stay on the server for the next run (or for
// draining).
type durableSubscriber struct {
	*sharedSubscriber
	t     *Transport
	name  func(topic string) string
	queue string
}

func (d durableSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := d.t.ensureConsumer(ctx, topic, d.name(topic), d.queue); err != nil {
		return nil, fmt.Errorf("jetstream: consumer of %s: %w", topic, err)
	}
	return d.sharedSubscriber.Subscribe(ctx, topic)
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
	info, err := js.ConsumerInfo(topic, name, nats.Context(ctx))
	if err == nil && info.Config.DeliverGroup != queue {
		// Made by an earlier version for a single subscription: deliver
		// to the queue group from now on.
		cfg := info.Config
		cfg.DeliverGroup = queue
		_, err = js.UpdateConsumer(topic, &cfg, nats.Context(ctx))
		return err
	}
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
	return t.keep(wnats.NewSubscriberWithNatsConn(t.nc, t.config(wnats.JetStreamConfig{Disabled: true}), t.logger))
}

func (t *Transport) config(js wnats.JetStreamConfig) wnats.SubscriberSubscriptionConfig {
	return wnats.SubscriberSubscriptionConfig{
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

// keep wraps a subscriber on the transport's connection and records it for
// Close.
func (t *Transport) keep(sub *wnats.Subscriber, err error) (*sharedSubscriber, error) {
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s := &sharedSubscriber{sub: sub, closing: make(chan struct{})}
	t.mu.Lock()
	t.subs = append(t.subs, s)
	t.mu.Unlock()
	return s, nil
}

// Close ends every subscription the transport made (closing a subscriber
// the bus closed already does nothing) and sends what the connection still
// holds (acknowledgements) within the timeout; then it closes the
// connection if Open made it. A connection given to New stays open. Call
// Close after the bus has stopped.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, s := range t.subs {
		errs = append(errs, s.Close())
	}
	t.subs = nil
	if t.nc.IsConnected() {
		if err := t.nc.FlushTimeout(t.cfg.timeout); err != nil {
			errs = append(errs, fmt.Errorf("jetstream: flush: %w", err))
		}
	}
	if t.owned {
		t.nc.Close()
	}
	return errors.Join(errs...)
}

// errSubscriberClosed is returned by Subscribe on a closed subscriber.
var errSubscriberClosed = errors.New("jetstream: subscriber closed")

// sharedSubscriber is a watermill-nats subscriber on the transport's
// connection, which it shares with the transport's other subscribers and
// publishers (and, with New, with the caller). watermill-nats's
// Subscriber.Close drains its connection, which would end every other
// subscription on it and close the connection: Close here never calls it,
// and ends the subscriptions through their contexts instead.
//
// Close takes no new message first (those the subscriber delivers meanwhile
// are left unacknowledged, to be delivered again after the ack wait), then
// cancels the subscriptions' contexts, on which watermill-nats
// unsubscribes and closes its channels, and waits for that.
type sharedSubscriber struct {
	sub     *wnats.Subscriber
	closing chan struct{}
	wg      sync.WaitGroup // one per subscription, until its channel closes

	mu      sync.Mutex
	closed  bool
	cancels []context.CancelFunc
}

func (s *sharedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errSubscriberClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	s.cancels = append(s.cancels, cancel)
	s.wg.Add(1)
	s.mu.Unlock()
	in, err := s.sub.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		s.wg.Done()
		return nil, err
	}
	out := make(chan *message.Message)
	// Hands messages over until Close; ends with watermill-nats's channel,
	// which closes once its subscriptions are unsubscribed (ctx).
	go func() {
		defer s.wg.Done()
		defer close(out)
		for msg := range in {
			select {
			case out <- msg:
			case <-s.closing:
			}
		}
	}()
	return out, nil
}

// Close ends the subscriptions and waits until they are unsubscribed;
// closing a closed subscriber does nothing.
func (s *sharedSubscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	cancels := s.cancels
	s.cancels = nil
	s.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
	s.wg.Wait()
	return nil
}
