package es_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

type OrderPlaced struct {
	OrderID string `json:"orderId"`
	Amount  int    `json:"amount"`
}

type OrderShipped struct {
	OrderID string `json:"orderId"`
}

// A registry turns domain events into stored events and back.
func ExampleNewRegistry() {
	ctx := context.Background()
	types, err := es.NewRegistry(
		es.Type[OrderPlaced]("OrderPlaced"),
		es.Type[OrderShipped]("OrderShipped"),
	)
	if err != nil {
		log.Fatal(err)
	}

	store := memstore.MustNew()
	var events []es.EventData
	for _, e := range []any{OrderPlaced{OrderID: "o-1", Amount: 42}, OrderShipped{OrderID: "o-1"}} {
		data, err := types.Encode(ctx, e)
		if err != nil {
			log.Fatal(err)
		}
		events = append(events, data)
	}
	if _, err := store.Append(ctx, "order-o-1", es.NoStream, events...); err != nil {
		log.Fatal(err)
	}

	for rec, err := range store.ReadStream(ctx, "order-o-1", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		e, err := types.Decode(rec)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d %s %s %+v\n", rec.Revision, rec.Type, rec.Data, e)
	}
	// Output:
	// 0 OrderPlaced {"orderId":"o-1","amount":42} {OrderID:o-1 Amount:42}
	// 1 OrderShipped {"orderId":"o-1"} {OrderID:o-1}
}

// Events stored before the domain changed still decode: an upcaster rewrites
// version 1, "OrderCreated" with a total in cents, into today's OrderPlaced.
func ExampleUpcast() {
	types, err := es.NewRegistry(
		es.Type[OrderPlaced]("OrderPlaced"),
		es.Upcast("OrderCreated", func(rec es.RecordedEvent) (es.RecordedEvent, error) {
			var v1 struct {
				ID    string `json:"id"`
				Total int    `json:"total"`
			}
			if err := json.Unmarshal(rec.Data, &v1); err != nil {
				return rec, err
			}
			data, err := json.Marshal(OrderPlaced{OrderID: v1.ID, Amount: v1.Total / 100})
			rec.Type, rec.Data = "OrderPlaced", data
			return rec, err
		}),
	)
	if err != nil {
		log.Fatal(err)
	}

	old := es.RecordedEvent{Stream: "order-o-1", Type: "OrderCreated", Data: []byte(`{"id":"o-1","total":4200}`)}
	e, err := types.Decode(old)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%T %+v\n", e, e)
	// Output:
	// es_test.OrderPlaced {OrderID:o-1 Amount:42}
}

// A reader that has the events as stored only in pieces, such as a message
// from a broker, asks whether an event type is upcast before it rebuilds
// the whole event.
func ExampleRegistry_HasUpcaster() {
	types, err := es.NewRegistry(
		es.Type[OrderPlaced]("OrderPlaced"),
		es.Upcast("OrderCreated", func(rec es.RecordedEvent) (es.RecordedEvent, error) {
			rec.Type = "OrderPlaced"
			return rec, nil
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(types.HasUpcaster("OrderCreated"), types.HasUpcaster("OrderPlaced"))
	// Output:
	// true false
}

// Expected revisions that come from outside the program, such as an HTTP
// If-Match header, are parsed.
func ExampleParseExpectedRevision() {
	for _, s := range []string{"any", "no_stream", "stream-exists", "42", "-1"} {
		r, err := es.ParseExpectedRevision(s)
		if err != nil {
			fmt.Println(errors.Is(err, es.ErrInvalidArgument), err)
			continue
		}
		fmt.Printf("%s: %v\n", s, r)
	}
	// Output:
	// any: any
	// no_stream: no stream
	// stream-exists: stream exists
	// 42: 42
	// true es: invalid argument: negative expected revision -1
}

// A conflicting append reports what it expected and what it found.
func ExampleWrongExpectedVersionError() {
	ctx := context.Background()
	store := memstore.MustNew()
	placed := es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)}
	if _, err := store.Append(ctx, "order-o-1", es.NoStream, placed); err != nil {
		log.Fatal(err)
	}

	// A second writer also believes the order is new.
	_, err := store.Append(ctx, "order-o-1", es.NoStream, placed)
	var conflict *es.WrongExpectedVersionError
	if errors.As(err, &conflict) {
		fmt.Println(conflict.Stream, "expected:", conflict.Expected, "actual:", conflict.Actual)
	}
	fmt.Println(errors.Is(err, es.ErrWrongExpectedVersion))
	// Output:
	// order-o-1 expected: no stream actual: 0
	// true
}

// Work caused by an event carries the event's correlation ID, and the event's
// ID as causation ID, into the events it writes.
func ExampleCausedBy() {
	ctx := es.WithMetadataValue(es.WithCorrelationID(context.Background(), "checkout-7"), "tenant", "acme")
	types, err := es.NewRegistry(es.Type[OrderPlaced]("OrderPlaced"), es.Type[OrderShipped]("OrderShipped"))
	if err != nil {
		log.Fatal(err)
	}
	placed, err := types.Encode(ctx, OrderPlaced{OrderID: "o-1"})
	if err != nil {
		log.Fatal(err)
	}
	placed.ID = uuid.MustParse("6f1c1f0e-0000-4000-8000-000000000001")

	store := memstore.MustNew()
	if _, err := store.Append(ctx, "order-o-1", es.NoStream, placed); err != nil {
		log.Fatal(err)
	}
	for rec, err := range store.ReadStream(ctx, "order-o-1", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		// A process manager reacts to the event.
		shipped, err := types.Encode(es.CausedBy(context.Background(), rec), OrderShipped{OrderID: "o-1"})
		if err != nil {
			log.Fatal(err)
		}
		m, err := es.ParseMetadata(shipped.Metadata)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("correlation:", m.CorrelationID)
		fmt.Println("causation:", m.CausationID)
		fmt.Println("tenant:", m.Values["tenant"])
	}
	// Output:
	// correlation: checkout-7
	// causation: 6f1c1f0e-0000-4000-8000-000000000001
	// tenant: acme
}

// Appends check the expected revision; reads are iterators that end with an
// error rather than silently.
func ExampleStore() {
	ctx := context.Background()
	var store es.Store = memstore.MustNew()

	res, err := store.Append(ctx, "order-o-1", es.NoStream,
		es.EventData{Type: "OrderPlaced", Data: []byte(`{"amount":42}`)},
		es.EventData{Type: "OrderPaid", Data: []byte(`{}`)},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("last revision:", res.Revision)

	if _, err := store.Append(ctx, "order-o-1", es.Exact(res.Revision), es.EventData{Type: "OrderShipped"}); err != nil {
		log.Fatal(err)
	}
	for rec, err := range store.ReadStream(ctx, "order-o-1", es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Revision, rec.Type)
	}
	for _, err := range store.ReadStream(ctx, "order-o-2", es.ReadStreamOptions{}) {
		fmt.Println(errors.Is(err, es.ErrStreamNotFound))
	}
	// Output:
	// last revision: 1
	// 2 OrderShipped
	// 1 OrderPaid
	// 0 OrderPlaced
	// true
}

// A stream's metadata limits what reads return.
func ExampleSetStreamMetadata() {
	ctx := context.Background()
	store := memstore.MustNew()
	for i := range 5 {
		if _, err := store.Append(ctx, "sensor-1", es.Any, es.EventData{Type: "Measured", Data: fmt.Appendf(nil, `{"n":%d}`, i)}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := es.SetStreamMetadata(ctx, store, "sensor-1", es.NoStream, es.StreamMetadata{MaxCount: 2}); err != nil {
		log.Fatal(err)
	}
	for rec, err := range store.ReadStream(ctx, "sensor-1", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Revision, string(rec.Data))
	}
	m, rev, err := es.GetStreamMetadata(ctx, store, "sensor-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("max count:", m.MaxCount, "metadata revision:", rev)
	// The revision read is what a conditional replacement expects.
	m.MaxCount = 3
	if _, err := es.SetStreamMetadata(ctx, store, "sensor-1", rev, m); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 3 {"n":3}
	// 4 {"n":4}
	// max count: 2 metadata revision: 0
}
