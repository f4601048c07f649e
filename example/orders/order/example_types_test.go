package order_test

import (
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/example/orders/order"
)

// Events stored by v0 of the shop as "OrderCreated", with prices in
// floating-point units, are read as today's "OrderPlaced" with prices in
// cents.
func ExampleTypes() {
	types, err := order.Types()
	if err != nil {
		log.Fatal(err)
	}
	old := es.RecordedEvent{
		Stream: "order-7",
		Type:   "OrderCreated",
		Data:   []byte(`{"id": "7", "customer": "dave", "lines": [{"sku": "mug", "qty": 2, "price": 4.95}], "createdAt": "2019-11-04T08:00:00Z"}`),
	}
	e, err := types.Decode(old)
	if err != nil {
		log.Fatal(err)
	}
	upcast := e.(order.Placed)
	fmt.Printf("%T: order %s, %d × %s at %v, total %v\n", upcast, upcast.OrderID, upcast.Items[0].Quantity, upcast.Items[0].ProductID, upcast.Items[0].UnitPrice, upcast.Total)
	// Output:
	// order.Placed: order 7, 2 × mug at 4.95, total 9.90
}
