package es_test

import (
	"encoding/json"
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
)

// OrderSubmitted is today's event; version 1 of it was stored as
// "OrderCreated", with the total in cents and the ID under another name.
type OrderSubmitted struct {
	OrderID string `json:"orderId"`
	Amount  int    `json:"amount"`
}

// Events stored before the domain changed still decode: an upcaster rewrites
// version 1, "OrderCreated" with a total in cents, into today's OrderSubmitted.
func ExampleUpcast() {
	types, err := es.NewRegistry(
		es.Type[OrderSubmitted]("OrderSubmitted"),
		es.Upcast("OrderCreated", func(rec es.RecordedEvent) (es.RecordedEvent, error) {
			var v1 struct {
				ID    string `json:"id"`
				Total int    `json:"total"`
			}
			if err := json.Unmarshal(rec.Data, &v1); err != nil {
				return rec, err
			}
			data, err := json.Marshal(OrderSubmitted{OrderID: v1.ID, Amount: v1.Total / 100})
			rec.Type, rec.Data = "OrderSubmitted", data
			return rec, err
		}),
	)
	if err != nil {
		log.Fatal(err)
	}

	old := es.RecordedEvent{Stream: "order-o-1", Type: "OrderCreated", Data: []byte(`{"id":"o-1","total":4200}`)}
	e, err := types.Decode(old)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%T %+v\n", e, e)
	// Output:
	// es_test.OrderSubmitted {OrderID:o-1 Amount:42}
}
