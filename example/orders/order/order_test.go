package order_test

import (
	"math"
	"testing"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/aggregate/aggregatetest"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The times of the story every test tells about order 42.
var (
	placedAt    = time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)
	confirmedAt = placedAt.Add(time.Hour)
	shippedAt   = placedAt.Add(26 * time.Hour)
	cancelledAt = placedAt.Add(2 * time.Hour)
)

// spec returns the given/when/then spec of orders, with the registry so that
// every event of a scenario also goes through a storage round trip.
func spec(t *testing.T) *aggregatetest.Spec[order.Order, order.Event] {
	t.Helper()
	types, err := order.Types()
	require.NoError(t, err)
	return aggregatetest.For(order.Definition(), types)
}

func items() []order.Item {
	return []order.Item{
		{ProductID: "keyboard", Quantity: 2, UnitPrice: 4990},
		{ProductID: "mouse", Quantity: 1, UnitPrice: 1990},
	}
}

func placeCmd() order.PlaceOrder {
	return order.PlaceOrder{OrderID: "42", CustomerID: "alice", Items: items(), PlacedAt: placedAt}
}

// The events of order 42, in the order they happen.
var (
	placed    = order.Placed{OrderID: "42", CustomerID: "alice", Items: items(), Total: 11970, PlacedAt: placedAt}
	confirmed = order.Confirmed{OrderID: "42", ConfirmedAt: confirmedAt}
	shipped   = order.Shipped{OrderID: "42", TrackingNumber: "1Z999", ShippedAt: shippedAt}
	cancelled = order.Cancelled{OrderID: "42", Reason: "changed my mind", CancelledAt: cancelledAt}
)

// The commands that cause them.
var (
	confirm = order.Confirm(order.ConfirmOrder{OrderID: "42", ConfirmedAt: confirmedAt})
	ship    = order.Ship(order.ShipOrder{OrderID: "42", TrackingNumber: "1Z999", ShippedAt: shippedAt})
	cancel  = order.Cancel(order.CancelOrder{OrderID: "42", Reason: "changed my mind", CancelledAt: cancelledAt})
)

func pendingOrder() order.Order {
	return order.Order{ID: "42", CustomerID: "alice", Status: order.StatusPending, Items: items(), Total: 11970, PlacedAt: placedAt}
}

func TestPlace(t *testing.T) {
	spec(t).Given().When(order.Place(placeCmd())).Then(t, placed)
	spec(t).Given().When(order.Place(placeCmd())).ThenState(t, pendingOrder())
}

func TestPlace_doesNotShareTheCommandsItems(t *testing.T) {
	cmd := placeCmd()
	events, err := spec(t).Given().When(order.Place(cmd)).Events()
	require.NoError(t, err)
	cmd.Items[0].Quantity = 99
	assert.Equal(t, 2, events[0].(order.Placed).Items[0].Quantity)
}

func TestPlace_rejectsInvalidCommands(t *testing.T) {
	tests := []struct {
		name   string
		change func(*order.PlaceOrder)
		want   error
	}{
		{"no order ID", func(c *order.PlaceOrder) { c.OrderID = "" }, order.ErrMissingField},
		{"no customer", func(c *order.PlaceOrder) { c.CustomerID = "" }, order.ErrMissingField},
		{"blank customer", func(c *order.PlaceOrder) { c.CustomerID = "  " }, order.ErrMissingField},
		{"no time", func(c *order.PlaceOrder) { c.PlacedAt = time.Time{} }, order.ErrMissingField},
		{"nil items", func(c *order.PlaceOrder) { c.Items = nil }, order.ErrEmptyOrder},
		{"no items", func(c *order.PlaceOrder) { c.Items = []order.Item{} }, order.ErrEmptyOrder},
		{"no product", func(c *order.PlaceOrder) { c.Items[1].ProductID = "" }, order.ErrMissingField},
		{"zero quantity", func(c *order.PlaceOrder) { c.Items[1].Quantity = 0 }, order.ErrInvalidQuantity},
		{"negative quantity", func(c *order.PlaceOrder) { c.Items[0].Quantity = -1 }, order.ErrInvalidQuantity},
		{"zero price", func(c *order.PlaceOrder) { c.Items[1].UnitPrice = 0 }, order.ErrInvalidPrice},
		{"negative price", func(c *order.PlaceOrder) { c.Items[0].UnitPrice = -4990 }, order.ErrInvalidPrice},
		{"subtotal overflows", func(c *order.PlaceOrder) { c.Items[0].UnitPrice = math.MaxInt64 }, order.ErrInvalidCommand},
		{"total overflows", func(c *order.PlaceOrder) {
			c.Items[0] = order.Item{ProductID: "gold", Quantity: 1, UnitPrice: math.MaxInt64}
		}, order.ErrInvalidCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := placeCmd()
			tt.change(&cmd)
			spec(t).Given().When(order.Place(cmd)).ThenError(t, tt.want)
			spec(t).Given().When(order.Place(cmd)).ThenError(t, order.ErrInvalidCommand)
		})
	}
}

func TestPlace_explainsWhichItemIsWrong(t *testing.T) {
	cmd := placeCmd()
	cmd.Items[1].Quantity = 0
	_, err := spec(t).Given().When(order.Place(cmd)).Events()
	assert.EqualError(t, err, "order: invalid command: quantity must be positive: item 2 (mouse) has quantity 0")
}

func TestConfirm(t *testing.T) {
	spec(t).Given(placed).When(confirm).Then(t, confirmed)

	want := pendingOrder()
	want.Status, want.ConfirmedAt = order.StatusConfirmed, confirmedAt
	spec(t).Given(placed).When(confirm).ThenState(t, want)
}

func TestShip(t *testing.T) {
	spec(t).Given(placed, confirmed).When(ship).Then(t, shipped)

	want := pendingOrder()
	want.Status, want.ConfirmedAt = order.StatusShipped, confirmedAt
	want.ShippedAt, want.TrackingNumber = shippedAt, "1Z999"
	spec(t).Given(placed, confirmed).When(ship).ThenState(t, want)
}

func TestCancel(t *testing.T) {
	spec(t).Given(placed).When(cancel).Then(t, cancelled)
	spec(t).Given(placed, confirmed).When(cancel).Then(t, cancelled)

	want := pendingOrder()
	want.Status, want.CancelledAt, want.CancelReason = order.StatusCancelled, cancelledAt, "changed my mind"
	spec(t).Given(placed).When(cancel).ThenState(t, want)
}

// TestForbiddenTransitions tries every command in every status that forbids it.
func TestForbiddenTransitions(t *testing.T) {
	var (
		never   []order.Event
		pending = []order.Event{placed}
		conf    = []order.Event{placed, confirmed}
		shipd   = []order.Event{placed, confirmed, shipped}
		cancd   = []order.Event{placed, cancelled}
	)
	tests := []struct {
		name  string
		given []order.Event
		when  aggregate.Decider[order.Order, order.Event]
	}{
		{"place a pending order", pending, order.Place(placeCmd())},
		{"place a shipped order", shipd, order.Place(placeCmd())},
		{"confirm an order never placed", never, confirm},
		{"confirm a confirmed order", conf, confirm},
		{"confirm a shipped order", shipd, confirm},
		{"confirm a cancelled order", cancd, confirm},
		{"ship an order never placed", never, ship},
		{"ship a pending order", pending, ship},
		{"ship a shipped order", shipd, ship},
		{"ship a cancelled order", cancd, ship},
		{"cancel an order never placed", never, cancel},
		{"cancel a shipped order", shipd, cancel},
		{"cancel a cancelled order", cancd, cancel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec(t).Given(tt.given...).When(tt.when).ThenError(t, order.ErrInvalidTransition)
		})
	}
}

func TestForbiddenTransitions_sayWhy(t *testing.T) {
	_, err := spec(t).Given(placed).When(ship).Events()
	assert.EqualError(t, err, "order: invalid transition: cannot ship order 42: it is pending")

	_, err = spec(t).Given().When(confirm).Events()
	assert.EqualError(t, err, "order: invalid transition: cannot confirm order 42: it was never placed")
}

func TestCommands_requireTheirFields(t *testing.T) {
	tests := []struct {
		name string
		when aggregate.Decider[order.Order, order.Event]
	}{
		{"confirm without a time", order.Confirm(order.ConfirmOrder{OrderID: "42"})},
		{"ship without a tracking number", order.Ship(order.ShipOrder{OrderID: "42", ShippedAt: shippedAt})},
		{"ship with a blank tracking number", order.Ship(order.ShipOrder{OrderID: "42", TrackingNumber: " ", ShippedAt: shippedAt})},
		{"ship without a time", order.Ship(order.ShipOrder{OrderID: "42", TrackingNumber: "1Z999"})},
		{"cancel without a reason", order.Cancel(order.CancelOrder{OrderID: "42", CancelledAt: cancelledAt})},
		{"cancel without a time", order.Cancel(order.CancelOrder{OrderID: "42", Reason: "changed my mind"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Given a state that allows the transition, so that only the
			// missing field can fail the command.
			spec(t).Given(placed, confirmed).When(tt.when).ThenError(t, order.ErrMissingField)
		})
	}
}

func TestMoney_String(t *testing.T) {
	tests := []struct {
		m    order.Money
		want string
	}{
		{0, "0.00"},
		{5, "0.05"},
		{4990, "49.90"},
		{-1999, "-19.99"},
		{math.MinInt64, "-92233720368547758.08"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.m.String(), "Money(%d)", int64(tt.m))
	}
}
