package order_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/example/orders/order"
)

// newOrders returns a repository of orders in a new in-memory store.
func newOrders() (*aggregate.Repository[order.Order, order.Event], error) {
	types, err := order.Types()
	if err != nil {
		return nil, err
	}
	return aggregate.New(memstore.MustNew(), types, order.Definition())
}

// An order's life in a repository: placed, then confirmed. Each call loads
// the order from its events, decides the command, and appends the new events.
func Example() {
	ctx := context.Background()
	now := time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)

	orders, err := newOrders()
	if err != nil {
		log.Fatal(err)
	}

	place := order.PlaceOrder{
		OrderID:    "1001",
		CustomerID: "alice",
		Items: []order.Item{
			{ProductID: "keyboard", Quantity: 2, UnitPrice: 4990},
			{ProductID: "mouse", Quantity: 1, UnitPrice: 1990},
		},
		PlacedAt: now,
	}
	if _, err = orders.Create(ctx, place.OrderID, order.Place(place)); err != nil {
		log.Fatal(err)
	}

	confirmCmd := order.ConfirmOrder{OrderID: "1001", ConfirmedAt: now.Add(time.Hour)}
	res, err := orders.Update(ctx, confirmCmd.OrderID, order.Confirm(confirmCmd))
	if err != nil {
		log.Fatal(err)
	}

	o := res.State
	fmt.Printf("order %s of %s: %s, %d items, total %v, version %d\n", o.ID, o.CustomerID, o.Status, len(o.Items), o.Total, res.Version)
	fmt.Println("confirmed at", o.ConfirmedAt.Format(time.Kitchen))
	// Output:
	// order 1001 of alice: confirmed, 2 items, total 119.70, version 1
	// confirmed at 10:00AM
}
