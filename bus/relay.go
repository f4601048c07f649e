package bus

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
)

// RelayName is the name of the projection that [Bus.Relay] returns: the
// name of its checkpoint and of its runner's status.
const RelayName = "relay"

// Relay returns the projection that publishes the store's events to the
// bus's events topic: run it with a checkpointed runner over the store
// (projection.NewRunner), so that events reach the bus only from the
// store. A crash between an append and its publication loses nothing,
// because the runner publishes again from its checkpoint; delivery is
// therefore at-least-once. The projection is named [RelayName] and selects
// the events of streams of the given categories ("order" for "order-…"),
// or every event when none is given; set its EventTypes to narrow it
// further, or its Name to run several relays over one checkpoint store.
//
// Give its runner no registry (nil): it then hands the events over as
// stored, without decoding payloads that the relay would throw away, and
// relays every type the projection selects, including types this process
// does not know. The bus decodes each event for the handlers that receive
// it. A live runner publishes a new event as soon as it is stored (a busy
// one, the events that arrived during its previous publication, together);
// its batch size and wait (projection.WithBatch) shape the batches of a
// catch-up. Give the runner projection.WithRestart, so that a broker away
// restarts the relay rather than stopping it (see [Bus.Publish]'s errors).
//
//	runner, err := projection.NewRunner(store, checkpoints, nil, b.Relay("order"),
//		projection.WithRestart(100*time.Millisecond, 10*time.Second))
func (b *Bus) Relay(categories ...string) projection.Projection[projection.NoTx] {
	return projection.Projection[projection.NoTx]{
		Name:       RelayName,
		Categories: categories,
		Handle: func(ctx context.Context, _ projection.NoTx, batch projection.Batch) error {
			return b.Publish(ctx, batch.Recorded()...)
		},
	}
}

// Publish publishes stored events to the bus's events topic, in order: it
// is what the projection of [Bus.Relay] does with each batch, and events
// should reach it only from the store. Each event goes out as a message
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
// handler), wrapped with [projection.ErrUnavailable], so that the relay's
// runner retries the batch and then fails (to be restarted,
// projection.WithRestart), and never takes an event for a poison event.
func (b *Bus) Publish(ctx context.Context, events ...es.RecordedEvent) error {
	if len(events) == 0 {
		return nil
	}
	if err := b.waitRunning(ctx); err != nil {
		return fmt.Errorf("bus: relay %d events from %v: %w: %w", len(events), events[0].Position, projection.ErrUnavailable, err)
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
		return fmt.Errorf("bus: relay %d events from %v: %w: %w", len(events), events[0].Position, projection.ErrUnavailable, err)
	}
	return nil
}
