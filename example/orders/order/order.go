package order

import (
	"fmt"
	"slices"
	"time"

	"github.com/eventfold/eventfold/aggregate"
)

// Money is an amount in cents. Integers keep sums exact, which floating
// point does not.
type Money int64

// String formats m in units with two decimals: Money(4990) is "49.90".
func (m Money) String() string {
	sign, u := "", uint64(m)
	if m < 0 {
		sign, u = "-", -u // unsigned, so that the smallest Money negates too
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// Item is a line of an order: a quantity of one product at a unit price.
type Item struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unitPrice"`
}

// Subtotal returns the item's price: quantity × unit price. It is exact for
// the items that [Place] accepts, whose subtotals and total fit in a Money.
func (i Item) Subtotal() Money { return Money(i.Quantity) * i.UnitPrice }

// Status is where an order is in its life. The zero value, "", is an order
// that was never placed.
type Status string

// The statuses of an order.
const (
	StatusPending   Status = "pending"
	StatusConfirmed Status = "confirmed"
	StatusShipped   Status = "shipped"
	StatusCancelled Status = "cancelled"
)

// Order is the state of an order, folded from its events by [Evolve]. The
// zero Order is an order that was never placed.
type Order struct {
	ID         string
	CustomerID string
	Status     Status
	Items      []Item
	Total      Money

	PlacedAt    time.Time
	ConfirmedAt time.Time // zero unless confirmed
	ShippedAt   time.Time // zero unless shipped
	CancelledAt time.Time // zero unless cancelled

	TrackingNumber string // set when shipped
	CancelReason   string // set when cancelled
}

// Evolve returns the state of order o after event e. It is pure and cannot
// fail: an event is a fact, already decided.
func Evolve(o Order, e Event) Order {
	switch e := e.(type) {
	case Placed:
		return Order{
			ID:         e.OrderID,
			CustomerID: e.CustomerID,
			Status:     StatusPending,
			Items:      slices.Clone(e.Items), // the state must not share the event's array
			Total:      e.Total,
			PlacedAt:   e.PlacedAt,
		}
	case Confirmed:
		o.Status, o.ConfirmedAt = StatusConfirmed, e.ConfirmedAt
	case Shipped:
		o.Status, o.ShippedAt, o.TrackingNumber = StatusShipped, e.ShippedAt, e.TrackingNumber
	case Cancelled:
		o.Status, o.CancelledAt, o.CancelReason = StatusCancelled, e.CancelledAt, e.Reason
	}
	return o
}

// Definition describes the order aggregate to package aggregate: its events
// live in stream "order-<id>" and fold into an [Order] with [Evolve].
func Definition() aggregate.Definition[Order, Event] {
	return aggregate.Definition[Order, Event]{Category: "order", Evolve: Evolve}
}
