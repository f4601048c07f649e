// Package order is the orders domain of a shop, written with eventfold the
// way an application team would write theirs: the commands that customers and
// the shop send, the events that record what happened, the state folded from
// those events, and the rules that decide between them.
//
// Everything here is pure: no I/O, no clock, no random IDs. Time and IDs come
// from the commands, so a decider gives the same answer every time it runs,
// which the repository relies on when it retries after a conflict. The
// program around the package wires it to a store:
//
//	types, err := order.Types()
//	if err != nil {
//		return err
//	}
//	orders, err := aggregate.New(store, types, order.Definition())
//	if err != nil {
//		return err
//	}
//	_, err = orders.Create(ctx, "1001", order.Place(order.PlaceOrder{
//		OrderID:    "1001",
//		CustomerID: "alice",
//		Items:      []order.Item{{ProductID: "keyboard", Quantity: 1, UnitPrice: 4990}},
//		PlacedAt:   now,
//	}))
//	_, err = orders.Update(ctx, "1001", order.Confirm(order.ConfirmOrder{OrderID: "1001", ConfirmedAt: now}))
//
// # Commands and deciders
//
// A command ([PlaceOrder], [ConfirmOrder], [ShipOrder], [CancelOrder]) is a
// plain struct with the data of a request. [Place], [Confirm], [Ship] and
// [Cancel] turn a command into an [aggregate.Decider]: a function from the
// current [Order] to the events the command causes, or a domain error.
//
// An order is placed once, confirmed while pending, shipped once confirmed,
// and cancelled while pending or confirmed:
//
//	        Place          Confirm           Ship
//	(none) ──────▶ pending ───────▶ confirmed ────▶ shipped
//	                  │                 │
//	                  └──── Cancel ─────┴─────────▶ cancelled
//
// # Events and their stored names
//
// The events ([Placed], [Confirmed], [Shipped], [Cancelled]) implement
// [Event]. [Types] registers them under names the domain owns and that never
// change: "OrderPlaced", "OrderConfirmed", "OrderShipped" and
// "OrderCancelled". Their JSON field names are fixed by struct tags for the
// same reason: renaming a Go type or field must not orphan stored events.
// [Evolve] folds events into an [Order], and [Definition] describes the
// aggregate to package aggregate (stream "order-<id>").
//
// # Errors
//
// Deciders fail with sentinel errors, often wrapped with details, that reach
// the caller of the repository unwrapped and are matched with [errors.Is].
// A command that is malformed whatever the order's state matches
// [ErrInvalidCommand] (and a more precise error: [ErrEmptyOrder],
// [ErrInvalidQuantity], …); a command that the order's state forbids matches
// [ErrInvalidTransition]. An HTTP API would map them to 400 and 409.
//
// # Changing events
//
// Stored events are facts and are never rewritten. When their shape changes,
// an upcaster rewrites old events as they are read. Before v1, orders were
// stored as "OrderCreated" events with prices in floating-point units;
// [Types] upcasts them to "OrderPlaced" with prices in cents, so old streams
// still load.
package order
