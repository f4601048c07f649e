package order_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/eventfold/eventfold/example/orders/order"
)

// Shipping needs a confirmed order: a pending one is an invalid transition.
// (newOrders is the package example's.)
func ExampleShip() {
	ctx := context.Background()
	now := time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)
	orders, err := newOrders()
	if err != nil {
		log.Fatal(err)
	}
	place := order.PlaceOrder{
		OrderID:    "1003",
		CustomerID: "alice",
		Items:      []order.Item{{ProductID: "cable", Quantity: 3, UnitPrice: 750}},
		PlacedAt:   now,
	}
	if _, err = orders.Create(ctx, place.OrderID, order.Place(place)); err != nil {
		log.Fatal(err)
	}

	shipCmd := order.ShipOrder{OrderID: "1003", TrackingNumber: "1Z999", ShippedAt: now.Add(time.Hour)}
	_, err = orders.Update(ctx, shipCmd.OrderID, order.Ship(shipCmd))
	fmt.Println(err)
	fmt.Println("conflict:", errors.Is(err, order.ErrInvalidTransition))
	// Output:
	// order: invalid transition: cannot ship order 1003: it is pending
	// conflict: true
}
