package eventstoredb_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
)

// A persistent subscription group on the streams of orders: the replicas
// of a service consume it together, each event acknowledged once handled.
// A nack with retry delivers an event again (RetryCount counts the
// deliveries before); an event nacked with park waits for ReplayParked.
func ExampleStore_SubscribeGroup() {
	srv, err := esdbtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	store, err := eventstoredb.Open(srv.ConnectionString(), eventstoredb.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Every event of the order- streams, each stream on one consumer.
	billing := eventstoredb.Group{Stream: eventstoredb.AllStream, Name: "billing"}
	err = store.EnsureGroup(ctx, billing, eventstoredb.GroupSettings{
		Strategy: eventstoredb.Pinned,
		Filter:   &es.Filter{On: es.FilterStreamName, Prefixes: []string{"order-"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	_, err = store.Append(ctx, "order-42", es.NoStream,
		es.EventData{Type: "OrderPlaced", Data: []byte(`{"total":10}`)},
		es.EventData{Type: "OrderShipped", Data: []byte(`{}`)})
	if err != nil {
		log.Fatal(err)
	}

	handled := 0
	for m, err := range store.SubscribeGroup(ctx, billing, eventstoredb.SubscribeGroupOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(m.Event.Stream, m.Event.Type, "retry", m.RetryCount)
		if m.Event.Type == "OrderShipped" && m.RetryCount == 0 {
			_ = m.Nack(eventstoredb.NackRetry, "the carrier is down") // again, later
			continue
		}
		if err := m.Ack(); err != nil {
			log.Fatal(err)
		}
		if handled++; handled == 2 {
			break
		}
	}
	info, err := store.GroupInfo(ctx, billing)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Group.Name, info.Strategy, "parked", info.Parked)
	// Output:
	// order-42 OrderPlaced retry 0
	// order-42 OrderShipped retry 0
	// order-42 OrderShipped retry 1
	// billing Pinned parked 0
}
