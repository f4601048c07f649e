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
// # Lifetime
//
// The Transport owns its connections: Close closes its publishers and
// every subscriber it made, after the bus has stopped.
package jetstream

import (
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
)

// Transport is a bus transport on NATS JetStream. Create it with New.
type Transport struct {
	url    string
	logger watermill.LoggerAdapter

	pub, replyPub message.Publisher

	mu   sync.Mutex
	subs []message.Subscriber
}

// New connects to the NATS server at url. logger receives Watermill's
// messages; nil discards them.
func New(url string, logger *slog.Logger) (*Transport, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Transport{url: url, logger: watermill.NewSlogLogger(logger)}
	var err error
	t.pub, err = wnats.NewPublisher(wnats.PublisherConfig{URL: url, Marshaler: &wnats.NATSMarshaler{}, JetStream: t.streams()}, t.logger)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	t.replyPub, err = wnats.NewPublisher(wnats.PublisherConfig{URL: url, Marshaler: &wnats.NATSMarshaler{}, JetStream: wnats.JetStreamConfig{Disabled: true}}, t.logger)
	if err != nil {
		_ = t.pub.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return t, nil
}

// streams is the JetStream configuration of commands and events: streams
// made on demand, and messages published with their UUID as JetStream
// message ID (Nats-Msg-Id), which JetStream de-duplicates.
func (t *Transport) streams() wnats.JetStreamConfig {
	return wnats.JetStreamConfig{AutoProvision: true, TrackMsgId: true}
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
	js.SubscribeOptions = []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit()}
	cfg := t.config(js)
	if strings.HasPrefix(consumer, "command-") {
		// A queue group needs a durable consumer made for one (with a
		// deliver group): its name differs from the single subscription's.
		js.DurableCalculator = func(prefix, topic string) string { return prefix + "_q_" + topic }
		cfg = t.config(js)
		cfg.QueueGroupPrefix, cfg.SubscribersCount = consumer, CommandSubscribers
	}
	return t.keep(wnats.NewSubscriber(cfg, t.logger))
}

// replySubscriber returns a core NATS subscriber for a bus's replies.
func (t *Transport) replySubscriber(string) (message.Subscriber, error) {
	return t.keep(wnats.NewSubscriber(t.config(wnats.JetStreamConfig{Disabled: true}), t.logger))
}

func (t *Transport) config(js wnats.JetStreamConfig) wnats.SubscriberConfig {
	return wnats.SubscriberConfig{
		URL:              t.url,
		SubscribersCount: 1,
		CloseTimeout:     5 * time.Second,
		AckWaitTimeout:   30 * time.Second,
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
	errs := []error{t.pub.Close(), t.replyPub.Close()}
	for _, s := range t.subs {
		errs = append(errs, s.Close())
	}
	t.subs = nil
	return errors.Join(errs...)
}
