package order_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/example/orders/order"
)

// A command that breaks a rule fails with a domain error, which reaches the
// caller of the repository as the decider returned it. Nothing is stored.
// (newOrders is the package example's.)
func ExamplePlace() {
	ctx := context.Background()
	orders, err := newOrders()
	if err != nil {
		log.Fatal(err)
	}

	empty := order.PlaceOrder{OrderID: "1002", CustomerID: "bob", PlacedAt: time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)}
	_, err = orders.Create(ctx, empty.OrderID, order.Place(empty))
	fmt.Println(err)
	fmt.Println("empty order:", errors.Is(err, order.ErrEmptyOrder))
	fmt.Println("bad request:", errors.Is(err, order.ErrInvalidCommand))

	_, _, err = orders.Load(ctx, "1002")
	fmt.Println("stored:", !errors.Is(err, aggregate.ErrNotFound))
	// Output:
	// order: invalid command: an order needs at least one item
	// empty order: true
	// bad request: true
	// stored: false
}
