package order

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/eventfold/eventfold/es"
)

// The names events are stored under. They are part of the stored data: never
// change them (see [Types]).
const (
	typePlaced    = "OrderPlaced"
	typeConfirmed = "OrderConfirmed"
	typeShipped   = "OrderShipped"
	typeCancelled = "OrderCancelled"

	// typeCreatedV0 is the name "OrderPlaced" had before v1; see createdV0.
	typeCreatedV0 = "OrderCreated"
)

// Event is an event of an order: [Placed], [Confirmed], [Shipped] or
// [Cancelled]. Only this package's types implement it.
type Event interface {
	isOrderEvent()
}

// Placed records that a customer placed an order. It is stored as
// "OrderPlaced".
type Placed struct {
	OrderID    string    `json:"orderId"`
	CustomerID string    `json:"customerId"`
	Items      []Item    `json:"items"`
	Total      Money     `json:"total"` // the sum of the items' subtotals, as agreed
	PlacedAt   time.Time `json:"placedAt"`
}

// Confirmed records that the shop accepted an order. It is stored as
// "OrderConfirmed".
type Confirmed struct {
	OrderID     string    `json:"orderId"`
	ConfirmedAt time.Time `json:"confirmedAt"`
}

// Shipped records that an order left the warehouse. It is stored as
// "OrderShipped".
type Shipped struct {
	OrderID        string    `json:"orderId"`
	TrackingNumber string    `json:"trackingNumber"`
	ShippedAt      time.Time `json:"shippedAt"`
}

// Cancelled records that an order was cancelled, and why. It is stored as
// "OrderCancelled".
type Cancelled struct {
	OrderID     string    `json:"orderId"`
	Reason      string    `json:"reason"`
	CancelledAt time.Time `json:"cancelledAt"`
}

func (Placed) isOrderEvent()    {}
func (Confirmed) isOrderEvent() {}
func (Shipped) isOrderEvent()   {}
func (Cancelled) isOrderEvent() {}

// Types returns a registry of the order events under their stored names, with
// the upcaster that reads events stored before v1 ("OrderCreated", see the
// package documentation). Build it once, when the program starts, and share
// it: a registry is safe for concurrent use.
func Types() (*es.Registry, error) {
	return es.NewRegistry(
		es.Type[Placed](typePlaced),
		es.Type[Confirmed](typeConfirmed),
		es.Type[Shipped](typeShipped),
		es.Type[Cancelled](typeCancelled),
		es.Upcast(typeCreatedV0, upcastCreatedV0),
	)
}

// createdV0 is the payload of "OrderCreated", the event that v0 of the shop
// stored when an order was placed. It had other field names, prices as
// floating-point units (49.9 for 49.90) and no total.
type createdV0 struct {
	ID       string    `json:"id"`
	Customer string    `json:"customer"`
	Lines    []lineV0  `json:"lines"`
	Created  time.Time `json:"createdAt"`
}

type lineV0 struct {
	SKU   string  `json:"sku"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
}

// upcastCreatedV0 rewrites an "OrderCreated" event into the "OrderPlaced"
// event it would be today: prices in cents, rounded to the nearest cent, and
// the total computed from the items.
func upcastCreatedV0(rec es.RecordedEvent) (es.RecordedEvent, error) {
	var old createdV0
	if err := json.Unmarshal(rec.Data, &old); err != nil {
		return rec, fmt.Errorf("order: %s v0: %w", typeCreatedV0, err)
	}
	placed := Placed{OrderID: old.ID, CustomerID: old.Customer, PlacedAt: old.Created}
	for _, l := range old.Lines {
		item := Item{ProductID: l.SKU, Quantity: l.Qty, UnitPrice: Money(math.Round(l.Price * 100))}
		placed.Items = append(placed.Items, item)
		placed.Total += item.Subtotal()
	}
	data, err := json.Marshal(placed)
	if err != nil {
		return rec, fmt.Errorf("order: %s v0: %w", typeCreatedV0, err)
	}
	rec.Type, rec.ContentType, rec.Data = typePlaced, es.ContentTypeJSON, data
	return rec, nil
}
