package bus

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventfold/eventfold/es"
)

// Publish publishes stored events to the bus's events topic, in order: it
// is the relay of the bus, which a checkpointed runner over the store calls
// with each batch (the projection is projection.Relay(b.Publish), as the
// package documentation shows), so that events reach the bus only from the
// store. Each event goes out as a message
// whose UUID is the event's ID, whose payload is the stored data, and
// whose metadata holds its type, stream, revision, position, creation time
// and stored metadata (with its correlation and causation IDs). Publish
// returns once the transport has them all; on the default in-process
// transport, once every handler group has handled them. It waits until
// the bus runs.
//
// Its errors are not the events' fault: the transport's error, or
// [ErrStopped] when the bus is stopping or has stopped (on the in-process
// transport, a publish that the stop overtook may not have reached every
// handler). projection.Relay says so to its runner, which retries the
// batch and then fails (to be restarted, projection.WithRestart), and
// never takes an event for a poison event.
func (b *Bus) Publish(ctx context.Context, events ...es.RecordedEvent) error {
	if len(events) == 0 {
		return nil
	}
	if err := b.waitRunning(ctx); err != nil {
		return fmt.Errorf("bus: publish %d events from %v: %w", len(events), events[0].Position, err)
	}
	msgs := make([]*message.Message, len(events))
	for i, e := range events {
		msgs[i] = eventMessage(e)
		msgs[i].SetContext(ctx)
	}
	err := b.cfg.publisher.Publish(b.eventTopic(), msgs...)
	if err == nil && b.ownedClose != nil && b.stop.isStopping() {
		// The in-process transport gives up on handlers that stopped
		// taking messages, and returns nil.
		err = ErrStopped
	}
	if err != nil {
		return fmt.Errorf("bus: publish %d events from %v: %w", len(events), events[0].Position, err)
	}
	return nil
}
