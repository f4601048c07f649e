package order

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/eventfold/eventfold/aggregate"
)

// PlaceOrder asks to place a new order. Its OrderID names the aggregate, as
// in orders.Create(ctx, cmd.OrderID, order.Place(cmd)).
type PlaceOrder struct {
	OrderID    string
	CustomerID string
	Items      []Item
	PlacedAt   time.Time
}

// ConfirmOrder asks to confirm a pending order.
type ConfirmOrder struct {
	OrderID     string
	ConfirmedAt time.Time
}

// ShipOrder asks to ship a confirmed order.
type ShipOrder struct {
	OrderID        string
	TrackingNumber string
	ShippedAt      time.Time
}

// CancelOrder asks to cancel an order that is pending or confirmed.
type CancelOrder struct {
	OrderID     string
	Reason      string
	CancelledAt time.Time
}

// Place decides cmd: an order that was never placed becomes pending with
// the command's items. The items must not be empty, and each needs a product
// ID, a positive quantity and a positive unit price. It fails with
// [ErrInvalidCommand] (and a more precise error) or [ErrInvalidTransition].
func Place(cmd PlaceOrder) aggregate.Decider[Order, Event] {
	return func(o Order) ([]Event, error) {
		switch {
		case blank(cmd.OrderID):
			return nil, missing("order ID")
		case blank(cmd.CustomerID):
			return nil, missing("customer ID")
		case cmd.PlacedAt.IsZero():
			return nil, missing("placed at")
		case len(cmd.Items) == 0:
			return nil, ErrEmptyOrder
		}
		total, err := sum(cmd.Items)
		if err != nil {
			return nil, err
		}
		if o.Status != "" {
			return nil, invalidTransition("place", cmd.OrderID, o.Status)
		}
		return []Event{Placed{
			OrderID:    cmd.OrderID,
			CustomerID: cmd.CustomerID,
			Items:      slices.Clone(cmd.Items), // the event must not share the caller's array
			Total:      total,
			PlacedAt:   cmd.PlacedAt,
		}}, nil
	}
}

// sum validates the items and returns their total.
func sum(items []Item) (Money, error) {
	var total Money
	for i, item := range items {
		switch {
		case blank(item.ProductID):
			return 0, missing(fmt.Sprintf("product ID of item %d", i+1))
		case item.Quantity <= 0:
			return 0, fmt.Errorf("%w: item %d (%s) has quantity %d", ErrInvalidQuantity, i+1, item.ProductID, item.Quantity)
		case item.UnitPrice <= 0:
			return 0, fmt.Errorf("%w: item %d (%s) has unit price %v", ErrInvalidPrice, i+1, item.ProductID, item.UnitPrice)
		case item.UnitPrice > math.MaxInt64/Money(item.Quantity) || item.Subtotal() > math.MaxInt64-total:
			return 0, fmt.Errorf("%w: the total is too large at item %d (%s)", ErrInvalidCommand, i+1, item.ProductID)
		}
		total += item.Subtotal()
	}
	return total, nil
}

// Confirm decides cmd: a pending order becomes confirmed. It fails with
// [ErrMissingField] or [ErrInvalidTransition].
func Confirm(cmd ConfirmOrder) aggregate.Decider[Order, Event] {
	return func(o Order) ([]Event, error) {
		if cmd.ConfirmedAt.IsZero() {
			return nil, missing("confirmed at")
		}
		if o.Status != StatusPending {
			return nil, invalidTransition("confirm", cmd.OrderID, o.Status)
		}
		return []Event{Confirmed{OrderID: o.ID, ConfirmedAt: cmd.ConfirmedAt}}, nil
	}
}

// Ship decides cmd: a confirmed order becomes shipped, with a tracking
// number. It fails with [ErrMissingField] or [ErrInvalidTransition].
func Ship(cmd ShipOrder) aggregate.Decider[Order, Event] {
	return func(o Order) ([]Event, error) {
		switch {
		case blank(cmd.TrackingNumber):
			return nil, missing("tracking number")
		case cmd.ShippedAt.IsZero():
			return nil, missing("shipped at")
		case o.Status != StatusConfirmed:
			return nil, invalidTransition("ship", cmd.OrderID, o.Status)
		}
		return []Event{Shipped{OrderID: o.ID, TrackingNumber: cmd.TrackingNumber, ShippedAt: cmd.ShippedAt}}, nil
	}
}

// Cancel decides cmd: a pending or confirmed order becomes cancelled, with a
// reason. It fails with [ErrMissingField] or [ErrInvalidTransition].
func Cancel(cmd CancelOrder) aggregate.Decider[Order, Event] {
	return func(o Order) ([]Event, error) {
		switch {
		case blank(cmd.Reason):
			return nil, missing("reason")
		case cmd.CancelledAt.IsZero():
			return nil, missing("cancelled at")
		case o.Status != StatusPending && o.Status != StatusConfirmed:
			return nil, invalidTransition("cancel", cmd.OrderID, o.Status)
		}
		return []Event{Cancelled{OrderID: o.ID, Reason: cmd.Reason, CancelledAt: cmd.CancelledAt}}, nil
	}
}

// blank reports whether s is empty or only white space.
func blank(s string) bool { return strings.TrimSpace(s) == "" }
