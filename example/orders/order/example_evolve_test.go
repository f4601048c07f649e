package order_test

import (
	"fmt"
	"time"

	"github.com/eventfold/eventfold/example/orders/order"
)

// Evolve folds events into the state; Definition.Fold does it for a list of
// events.
func ExampleEvolve() {
	now := time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)
	o := order.Definition().Fold(
		order.Placed{OrderID: "1005", CustomerID: "carol", Items: []order.Item{{ProductID: "lamp", Quantity: 1, UnitPrice: 2500}}, Total: 2500, PlacedAt: now},
		order.Confirmed{OrderID: "1005", ConfirmedAt: now.Add(time.Hour)},
		order.Shipped{OrderID: "1005", TrackingNumber: "1Z777", ShippedAt: now.Add(24 * time.Hour)},
	)
	fmt.Println(o.Status, o.TrackingNumber, o.ShippedAt.Format(time.DateOnly))
	// Output:
	// shipped 1Z777 2026-03-03
}
