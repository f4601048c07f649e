package es_test

import (
	"context"
	"fmt"
	"log"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

// PaymentCaptured causes ShipmentRequested, through a process manager.
type (
	PaymentCaptured   struct{ OrderID string }
	ShipmentRequested struct{ OrderID string }
)

// Work caused by an event carries the event's correlation ID, and the event's
// ID as causation ID, into the events it writes.
func ExampleCausedBy() {
	ctx := es.WithMetadataValue(es.WithCorrelationID(context.Background(), "checkout-7"), "tenant", "acme")
	types, err := es.NewRegistry(es.Type[PaymentCaptured]("PaymentCaptured"), es.Type[ShipmentRequested]("ShipmentRequested"))
	if err != nil {
		log.Fatal(err)
	}
	placed, err := types.Encode(ctx, PaymentCaptured{OrderID: "o-1"})
	if err != nil {
		log.Fatal(err)
	}
	placed.ID = uuid.MustParse("6f1c1f0e-0000-4000-8000-000000000001")

	store := memstore.MustNew()
	if _, err := store.Append(ctx, "order-o-1", es.NoStream, placed); err != nil {
		log.Fatal(err)
	}
	for rec, err := range store.ReadStream(ctx, "order-o-1", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		// A process manager reacts to the event.
		shipped, err := types.Encode(es.CausedBy(context.Background(), rec), ShipmentRequested{OrderID: "o-1"})
		if err != nil {
			log.Fatal(err)
		}
		m, err := es.ParseMetadata(shipped.Metadata)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("correlation:", m.CorrelationID)
		fmt.Println("causation:", m.CausationID)
		fmt.Println("tenant:", m.Values["tenant"])
	}
	// Output:
	// correlation: checkout-7
	// causation: 6f1c1f0e-0000-4000-8000-000000000001
	// tenant: acme
}
