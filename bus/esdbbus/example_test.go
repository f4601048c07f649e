package esdbbus_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/esdbbus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
)

// OrderPlaced is the domain event of this example.
type OrderPlaced struct {
	Total int `json:"total"`
}

// The event handlers of a service, on as many replicas as it runs, read
// the domain's events straight from EventStoreDB: the bus's events topic
// is the `$all` stream filtered on the order- streams, and the handler
// group "billing" a persistent subscription group ("events-billing")
// pinned by stream, so each order's events reach one replica, in order.
func Example() {
	srv, err := esdbtest.Start() // EventStoreDB in production
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	quiet := slog.New(slog.DiscardHandler)
	store, err := eventstoredb.Open(srv.ConnectionString(), eventstoredb.WithLogger(quiet))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	t, err := esdbbus.New(store, esdbbus.WithLogger(quiet),
		esdbbus.WithSource("shop-events", esdbbus.StreamPrefixes("order-")),
		esdbbus.WithGroupSettings(eventstoredb.GroupSettings{Strategy: eventstoredb.Pinned}))
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close() // after the bus stops

	commands, _ := es.NewRegistry()
	events, _ := es.NewRegistry(es.Type[OrderPlaced]("OrderPlaced"))
	b, err := bus.New(commands, events, append(t.Options(), bus.WithTopicPrefix("shop-"), bus.WithLogger(quiet))...)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	err = bus.HandleEvent(b, "billing", func(ctx context.Context, e OrderPlaced) error {
		rec, _ := bus.EventFromContext(ctx)
		fmt.Println("bill", rec.Stream, e.Total)
		close(done)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = b.Run(ctx); close(stopped) }()

	// An aggregate appends; no relay: the group reads the store.
	_, err = store.Append(ctx, "order-42", es.NoStream, es.EventData{Type: "OrderPlaced", Data: []byte(`{"total":10}`)})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	cancel()
	<-stopped
	// Output:
	// bill order-42 10
}
