package order_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
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

	types, err := order.Types()
	if err != nil {
		log.Fatal(err)
	}
	orders, err := aggregate.New(memstore.MustNew(), types, order.Definition())
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
	if _, err := orders.Create(ctx, place.OrderID, order.Place(place)); err != nil {
		log.Fatal(err)
	}

	confirm := order.ConfirmOrder{OrderID: "1001", ConfirmedAt: now.Add(time.Hour)}
	res, err := orders.Update(ctx, confirm.OrderID, order.Confirm(confirm))
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

// A command that breaks a rule fails with a domain error, which reaches the
// caller of the repository as the decider returned it. Nothing is stored.
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

// Shipping needs a confirmed order: a pending one is an invalid transition.
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
	if _, err := orders.Create(ctx, place.OrderID, order.Place(place)); err != nil {
		log.Fatal(err)
	}

	ship := order.ShipOrder{OrderID: "1003", TrackingNumber: "1Z999", ShippedAt: now.Add(time.Hour)}
	_, err = orders.Update(ctx, ship.OrderID, order.Ship(ship))
	fmt.Println(err)
	fmt.Println("conflict:", errors.Is(err, order.ErrInvalidTransition))
	// Output:
	// order: invalid transition: cannot ship order 1003: it is pending
	// conflict: true
}

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
	placed := e.(order.Placed)
	fmt.Printf("%T: order %s, %d × %s at %v, total %v\n", placed, placed.OrderID, placed.Items[0].Quantity, placed.Items[0].ProductID, placed.Items[0].UnitPrice, placed.Total)
	// Output:
	// order.Placed: order 7, 2 × mug at 4.95, total 9.90
}

func ExampleMoney_String() {
	fmt.Println(order.Money(4990), order.Money(5), order.Money(-120))
	// Output:
	// 49.90 0.05 -1.20
}
