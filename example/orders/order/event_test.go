package order_test

import (
	"testing"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTypes_storedNames pins the names events are stored under: changing one
// orphans every event stored with the old name.
func TestTypes_storedNames(t *testing.T) {
	types, err := order.Types()
	require.NoError(t, err)
	assert.Equal(t, []string{"OrderCancelled", "OrderConfirmed", "OrderPlaced", "OrderShipped"}, types.Names())

	for name, e := range map[string]order.Event{
		"OrderPlaced":    order.Placed{},
		"OrderConfirmed": order.Confirmed{},
		"OrderShipped":   order.Shipped{},
		"OrderCancelled": order.Cancelled{},
	} {
		got, err := types.Name(e)
		require.NoError(t, err)
		assert.Equal(t, name, got)
	}
}

// TestTypes_storedPayload pins the JSON of an event, which is stored data
// as much as its name.
func TestTypes_storedPayload(t *testing.T) {
	types, err := order.Types()
	require.NoError(t, err)
	data, err := types.Encode(t.Context(), placed)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"orderId": "42",
		"customerId": "alice",
		"items": [
			{"productId": "keyboard", "quantity": 2, "unitPrice": 4990},
			{"productId": "mouse", "quantity": 1, "unitPrice": 1990}
		],
		"total": 11970,
		"placedAt": "2026-03-02T09:00:00Z"
	}`, string(data.Data))
}

// orderCreatedV0 is an order as v0 of the shop stored it.
const orderCreatedV0 = `{
	"id": "42",
	"customer": "alice",
	"lines": [{"sku": "keyboard", "qty": 2, "price": 49.9}, {"sku": "mouse", "qty": 1, "price": 19.9}],
	"createdAt": "2026-03-02T09:00:00Z"
}`

func TestTypes_upcastsOrderCreatedV0(t *testing.T) {
	types, err := order.Types()
	require.NoError(t, err)

	got, err := types.Decode(es.RecordedEvent{Stream: "order-42", Type: "OrderCreated", ContentType: es.ContentTypeJSON, Data: []byte(orderCreatedV0)})
	require.NoError(t, err)
	assert.Equal(t, placed, got)
}

// TestTypes_upcastsInAStream loads an order whose stream began before v1.
func TestTypes_upcastsInAStream(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	types, err := order.Types()
	require.NoError(t, err)
	confirmedData, err := types.Encode(ctx, confirmed)
	require.NoError(t, err)
	_, err = store.Append(ctx, "order-42", es.NoStream,
		es.EventData{Type: "OrderCreated", Data: []byte(orderCreatedV0)},
		confirmedData,
	)
	require.NoError(t, err)

	orders, err := aggregate.New(store, types, order.Definition())
	require.NoError(t, err)
	got, version, err := orders.Load(ctx, "42")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), version)
	want := pendingOrder()
	want.Status, want.ConfirmedAt = order.StatusConfirmed, confirmedAt
	assert.Equal(t, want, got)
}

func TestTypes_upcastRejectsMalformedV0(t *testing.T) {
	types, err := order.Types()
	require.NoError(t, err)
	_, err = types.Decode(es.RecordedEvent{Stream: "order-42", Revision: 3, Type: "OrderCreated", Data: []byte(`{"lines": 7}`)})
	var decodeErr *es.DecodeError
	require.ErrorAs(t, err, &decodeErr)
	assert.Equal(t, "OrderCreated", decodeErr.Type)
	assert.Equal(t, uint64(3), decodeErr.Revision)
}

// TestRepository_returnsDomainErrors checks what callers of the
// repository rely on: the decider's error itself, and the repository's own
// errors for orders that exist or do not.
func TestRepository_returnsDomainErrors(t *testing.T) {
	ctx := t.Context()
	types, err := order.Types()
	require.NoError(t, err)
	orders, err := aggregate.New(memstore.MustNew(), types, order.Definition())
	require.NoError(t, err)

	_, err = orders.Create(ctx, "42", order.Place(placeCmd()))
	require.NoError(t, err)

	_, err = orders.Update(ctx, "42", ship)
	require.ErrorIs(t, err, order.ErrInvalidTransition)
	assert.EqualError(t, err, "order: invalid transition: cannot ship order 42: it is pending")

	_, err = orders.Create(ctx, "42", order.Place(placeCmd()))
	assert.ErrorIs(t, err, aggregate.ErrAlreadyExists)

	_, err = orders.Update(ctx, "43", order.Confirm(order.ConfirmOrder{OrderID: "43", ConfirmedAt: confirmedAt}))
	assert.ErrorIs(t, err, aggregate.ErrNotFound)
}
