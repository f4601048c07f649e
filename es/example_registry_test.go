package es_test

import (
	"context"
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

// OrderPlaced and OrderShipped are domain events: plain Go types.
type OrderPlaced struct {
	OrderID string `json:"orderId"`
	Amount  int    `json:"amount"`
}

type OrderShipped struct {
	OrderID string `json:"orderId"`
}

// A registry turns domain events into stored events and back.
func ExampleNewRegistry() {
	ctx := context.Background()
	types, err := es.NewRegistry(
		es.Type[OrderPlaced]("OrderPlaced"),
		es.Type[OrderShipped]("OrderShipped"),
	)
	if err != nil {
		log.Fatal(err)
	}

	store := memstore.MustNew()
	var events []es.EventData
	for _, e := range []any{OrderPlaced{OrderID: "o-1", Amount: 42}, OrderShipped{OrderID: "o-1"}} {
		data, err := types.Encode(ctx, e)
		if err != nil {
			log.Fatal(err)
		}
		events = append(events, data)
	}
	if _, err := store.Append(ctx, "order-o-1", es.NoStream, events...); err != nil {
		log.Fatal(err)
	}

	for rec, err := range store.ReadStream(ctx, "order-o-1", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		e, err := types.Decode(rec)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d %s %s %+v\n", rec.Revision, rec.Type, rec.Data, e)
	}
	// Output:
	// 0 OrderPlaced {"orderId":"o-1","amount":42} {OrderID:o-1 Amount:42}
	// 1 OrderShipped {"orderId":"o-1"} {OrderID:o-1}
}
