package bus

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
)

// Relay publishes stored events to the bus's events topic. It is the
// handler of a checkpointed projection over the store (package projection),
// so that events reach the bus only from the store: a crash between an
// append and its publication loses nothing, because the projection
// publishes again from its checkpoint. Delivery is therefore at-least-once.
//
// Give the projection's runner no registry (nil): it then hands the events
// over as stored, without decoding payloads that the relay would throw
// away, and relays every type the projection selects (choose them with its
// Categories or EventTypes), including types this process does not know.
// The bus decodes each event for the handlers that receive it. A live
// runner publishes a new event as soon as it is stored (a busy one, the
// events that arrived during its previous publication, together); its
// batch size and wait (projection.WithBatch) shape the batches of a
// catch-up. Give the runner projection.WithRestart, so that a broker away
// restarts the relay rather than stopping it (see Publish's errors).
//
//	relay := bus.NewRelay(b)
//	runner, err := projection.NewRunner(store, checkpoints, nil, projection.Projection[projection.NoTx]{
//		Name: "relay",
//		Handle: func(ctx context.Context, _ projection.NoTx, batch projection.Batch) error {
//			return relay.Publish(ctx, batch.Recorded()...)
//		},
//	}, projection.WithRestart(100*time.Millisecond, 10*time.Second))
type Relay struct{ b *Bus }

// NewRelay returns a relay to b's events topic. The bus must run (in this
// process) for Publish to publish.
func NewRelay(b *Bus) *Relay { return &Relay{b: b} }

// Publish publishes events in order, each as a message whose UUID is the
// event's ID, whose payload is the stored data, and whose metadata holds
// its type, stream, revision, position, creation time and stored metadata
// (with its correlation and causation IDs). It returns once the transport
// has them all; on the default in-process transport, once every handler
// group has handled them. It waits until the bus runs.
//
// Its errors are not the events' fault: the transport's error, or
// [ErrStopped] when the bus is stopping or has stopped (on the in-process
// transport, a publish that the stop overtook may not have reached every
// handler), wrapped with [projection.ErrUnavailable], so that the relay's
// runner retries the batch and then fails (to be restarted,
// projection.WithRestart), and never takes an event for a poison event.
func (r *Relay) Publish(ctx context.Context, events ...es.RecordedEvent) error {
	if len(events) == 0 {
		return nil
	}
	if err := r.b.waitRunning(ctx); err != nil {
		return fmt.Errorf("bus: relay %d events from %v: %w: %w", len(events), events[0].Position, projection.ErrUnavailable, err)
	}
	msgs := make([]*message.Message, len(events))
	for i, e := range events {
		msgs[i] = eventMessage(e)
		msgs[i].SetContext(ctx)
	}
	err := r.b.cfg.publisher.Publish(r.b.eventTopic(), msgs...)
	if err == nil && r.b.ownedClose != nil && r.b.stop.isStopping() {
		// The in-process transport gives up on handlers that stopped
		// taking messages, and returns nil.
		err = ErrStopped
	}
	if err != nil {
		return fmt.Errorf("bus: relay %d events from %v: %w: %w", len(events), events[0].Position, projection.ErrUnavailable, err)
	}
	return nil
}
