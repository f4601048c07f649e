package projection_test

import (
	"context"
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// outbox stands for a message bus: its Publish method is what a relay
// calls (bus.Bus.Publish has the same signature).
type outbox struct{ sent chan string }

// Publish sends the events, as stored, in order.
func (o outbox) Publish(_ context.Context, events ...es.RecordedEvent) error {
	for _, e := range events {
		o.sent <- e.Stream + " " + e.Type
	}
	return nil
}

// A relay publishes the store's events, from a checkpoint, to a bus.
func ExampleRelay() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memstore.MustNew()
	box := outbox{sent: make(chan string)}

	// No registry (nil): the events are handed over as stored.
	relay, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Relay(box.Publish, "order"))
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = relay.Run(ctx) }()

	for _, stream := range []string{"order-1", "invoice-1", "order-2"} {
		if _, err := store.Append(ctx, stream, es.NoStream, es.EventData{Type: "Opened", Data: []byte(`{}`)}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(<-box.sent)
	fmt.Println(<-box.sent)
	// Output:
	// order-1 Opened
	// order-2 Opened
}
