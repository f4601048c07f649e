package order_test

import (
	"fmt"
	"log"
	"time"

	"github.com/eventfold/eventfold/example/orders/order"
)

// Cancelling keeps the reason in the order's state.
func ExampleCancel() {
	now := time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)
	pending := order.Definition().Fold(order.Placed{
		OrderID:    "1004",
		CustomerID: "bob",
		Items:      []order.Item{{ProductID: "monitor", Quantity: 1, UnitPrice: 18900}},
		Total:      18900,
		PlacedAt:   now,
	})

	events, err := order.Cancel(order.CancelOrder{OrderID: "1004", Reason: "found it cheaper", CancelledAt: now.Add(time.Hour)})(pending)
	if err != nil {
		log.Fatal(err)
	}
	o := order.Definition().FoldFrom(pending, events...)
	fmt.Printf("%s: %q\n", o.Status, o.CancelReason)
	// Output:
	// cancelled: "found it cheaper"
}
