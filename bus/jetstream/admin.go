package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	njs "github.com/nats-io/nats.go/jetstream"
)

// Stream is a JetStream stream of a bus's topic, as [Transport.Streams]
// reports it.
type Stream struct {
	// Name is the stream's name: its topic.
	Name string
	// Messages is how many messages the stream holds.
	Messages uint64
	// Consumers are the stream's durable consumers: a command handler's,
	// an event handler group's.
	Consumers []Consumer
}

// Consumer is a durable consumer of a [Stream].
type Consumer struct {
	// Name is the consumer's durable name.
	Name string
	// Pending counts the messages the consumer has not acknowledged yet:
	// not delivered yet, or delivered and waiting for their
	// acknowledgement.
	Pending uint64
}

// Pending returns how many messages the consumers of streams have not
// acknowledged, in all.
func Pending(streams []Stream) uint64 {
	var n uint64
	for _, s := range streams {
		for _, c := range s.Consumers {
			n += c.Pending
		}
	}
	return n
}

// Streams returns the streams whose names start with prefix (the topics
// of a bus, [bus.Bus.TopicPrefix]), sorted by name, with their consumers.
// An empty prefix is refused: it would select every stream of the server.
func (t *Transport) Streams(ctx context.Context, prefix string) ([]Stream, error) {
	if prefix == "" {
		return nil, fmt.Errorf("%w: empty stream prefix", ErrInvalidOption)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.timeout)
	defer cancel()
	var out []Stream
	streams := t.js.ListStreams(ctx)
	for info := range streams.Info() {
		if !strings.HasPrefix(info.Config.Name, prefix) {
			continue
		}
		s := Stream{Name: info.Config.Name, Messages: info.State.Msgs}
		st, err := t.js.Stream(ctx, s.Name)
		if errors.Is(err, njs.ErrStreamNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, fmt.Errorf("jetstream: stream %s: %w", s.Name, err)
		}
		consumers := st.ListConsumers(ctx)
		for c := range consumers.Info() {
			s.Consumers = append(s.Consumers, Consumer{Name: c.Name, Pending: c.NumPending + uint64(c.NumAckPending)})
		}
		if err := consumers.Err(); err != nil {
			return nil, fmt.Errorf("jetstream: consumers of %s: %w", s.Name, err)
		}
		sort.Slice(s.Consumers, func(i, j int) bool { return s.Consumers[i].Name < s.Consumers[j].Name })
		out = append(out, s)
	}
	if err := streams.Err(); err != nil {
		return nil, fmt.Errorf("jetstream: list streams: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteStreams deletes the streams whose names start with prefix, and
// with them their consumers and messages, and returns their names. An
// empty prefix is refused. Stop the buses that use them first.
func (t *Transport) DeleteStreams(ctx context.Context, prefix string) ([]string, error) {
	streams, err := t.Streams(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, s := range streams {
		dctx, cancel := context.WithTimeout(ctx, t.cfg.timeout)
		err := t.js.DeleteStream(dctx, s.Name)
		cancel()
		if err != nil && !errors.Is(err, njs.ErrStreamNotFound) {
			return deleted, fmt.Errorf("jetstream: delete stream %s: %w", s.Name, err)
		}
		deleted = append(deleted, s.Name)
	}
	return deleted, nil
}
