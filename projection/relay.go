package projection

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold/es"
)

// RelayName is the name of the projection that [Relay] returns: the name
// of its checkpoint and of its runner's status.
const RelayName = "relay"

// Relay returns the projection that hands the store's events, as stored,
// to publish: the relay of an outbox, which publishes each batch to a
// message bus (publish is then the bus's Publish method, such as
// bus.Bus.Publish). Run it with a checkpointed runner over the store
// (NewRunner), so that events reach the bus only from the store: a crash
// between an append and its publication loses nothing, because the runner
// publishes again from its checkpoint, and delivery is therefore
// at-least-once. The projection is named [RelayName] and selects the
// events of streams of the given categories ("order" for "order-…"), or
// every event when none is given; set its EventTypes to narrow it further,
// or its Name to run several relays over one checkpoint store.
//
// Give its runner no registry (nil): it then hands the events over as
// stored, without decoding payloads that the relay would throw away, and
// relays every type the projection selects, including types this process
// does not know. A live runner publishes a new event as soon as it is
// stored (a busy one, the events that arrived during its previous
// publication, together); its batch size and wait ([WithBatch]) shape the
// batches of a catch-up.
//
// An error of publish is never the events' fault (they are published as
// stored): unless the runner's context ended, Relay wraps it with
// [ErrUnavailable], so that the runner retries the batch and then fails
// without taking an event for a poison event. Give the runner
// [WithRestart], so that a broker away restarts the relay rather than
// stopping it.
//
//	runner, err := projection.NewRunner(store, checkpoints, nil, projection.Relay(b.Publish, "order"),
//		projection.WithRestart(100*time.Millisecond, 10*time.Second))
func Relay(publish func(ctx context.Context, events ...es.RecordedEvent) error, categories ...string) Projection[NoTx] {
	return Projection[NoTx]{
		Name:       RelayName,
		Categories: categories,
		Handle: func(ctx context.Context, _ NoTx, batch Batch) error {
			err := publish(ctx, batch.Recorded()...)
			if err == nil || ctx.Err() != nil {
				return err
			}
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		},
	}
}
