package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	njs "github.com/nats-io/nats.go/jetstream"
)

// publisher publishes commands and events to JetStream: each message with
// its UUID as JetStream message ID (Nats-Msg-Id), which JetStream
// de-duplicates, and each call bounded by the timeout and by the context
// of the message (the relay's, the sender's). Streams are made on demand,
// named after their topic, with the topic as their only subject, as the
// subscribers make them.
type publisher struct {
	js      njs.JetStream
	timeout time.Duration

	mu    sync.Mutex
	known map[string]bool // streams that exist
}

var marshaler wnats.NATSMarshaler

// Publish publishes msgs in order, each once JetStream has stored the one
// before.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	for _, msg := range msgs {
		if err := p.publish(msg.Context(), topic, msg); err != nil {
			return fmt.Errorf("jetstream: publish to %s: %w", topic, err)
		}
	}
	return nil
}

func (p *publisher) publish(ctx context.Context, topic string, msg *message.Message) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.ensureStream(ctx, topic); err != nil {
		return err
	}
	m, err := marshaler.Marshal(topic, msg)
	if err != nil {
		return err
	}
	_, err = p.js.PublishMsg(ctx, m, njs.WithMsgID(msg.UUID))
	return err
}

// ensureStream makes the stream of topic unless it is known to exist.
func (p *publisher) ensureStream(ctx context.Context, topic string) error {
	p.mu.Lock()
	known := p.known[topic]
	p.mu.Unlock()
	if known {
		return nil
	}
	_, err := p.js.Stream(ctx, topic)
	if errors.Is(err, njs.ErrStreamNotFound) {
		_, err = p.js.CreateStream(ctx, njs.StreamConfig{Name: topic, Subjects: []string{topic}})
		if errors.Is(err, njs.ErrStreamNameAlreadyInUse) {
			err = nil // made meanwhile by a subscriber
		}
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", topic, err)
	}
	p.mu.Lock()
	p.known[topic] = true
	p.mu.Unlock()
	return nil
}

// Close does nothing: the Transport closes the connection.
func (p *publisher) Close() error { return nil }
