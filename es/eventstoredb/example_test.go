package eventstoredb_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
)

// The adapter against the in-process server; in production the connection
// string points at EventStoreDB, such as "esdb://localhost:2113?tls=false".
func ExampleOpen() {
	srv, err := esdbtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	store, err := eventstoredb.Open(srv.ConnectionString())
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx := context.Background()
	res, err := store.Append(ctx, "order-42", es.NoStream,
		es.EventData{Type: "OrderPlaced", Data: []byte(`{"total":10}`)},
		es.EventData{Type: "OrderShipped", Data: []byte(`{}`)},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("last revision:", res.Revision)

	for ev, err := range store.ReadStream(ctx, "order-42", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Revision, ev.Type, string(ev.Data))
	}

	_, err = store.Append(ctx, "order-42", es.NoStream, es.EventData{Type: "OrderPlaced"})
	fmt.Println(errors.Is(err, es.ErrWrongExpectedVersion), err)
	// Output:
	// last revision: 1
	// 0 OrderPlaced {"total":10}
	// 1 OrderShipped {}
	// true es: wrong expected version for stream "order-42": expected no stream, actual 1
}

// With EventStoreDB unreachable, calls fail within the call timeout (at
// once when nothing listens at the address) with a transient error: retry
// later, or answer "unavailable". The store reconnects by itself when the
// node is back.
func ExampleIsTransient() {
	srv, err := esdbtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	conn := srv.ConnectionString()
	srv.Close() // the node goes away

	store, err := eventstoredb.Open(conn,
		eventstoredb.WithCallTimeout(2*time.Second),
		eventstoredb.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	_, err = store.Append(context.Background(), "order-42", es.Any, es.EventData{Type: "OrderPlaced"})
	// eventstoredb.ErrUnavailable is es.ErrUnavailable: one check for every store.
	fmt.Println(eventstoredb.IsTransient(err), errors.Is(err, eventstoredb.ErrUnavailable), errors.Is(err, es.ErrUnavailable))
	// Output:
	// true true true
}

// WithCallTimeout bounds each call when the caller's context has no earlier
// deadline.
func ExampleWithCallTimeout() {
	srv, err := esdbtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	store, err := eventstoredb.Open(srv.ConnectionString(), eventstoredb.WithCallTimeout(500*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	res, err := store.Append(context.Background(), "order-7", es.NoStream, es.EventData{Type: "OrderPlaced"})
	fmt.Println(res.Revision, err)
	// Output:
	// 0 <nil>
}

// A Store on a client that the caller configured and owns: closing the
// Store leaves the client open.
func ExampleNew() {
	srv, err := esdbtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	cfg, err := esdb.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		log.Fatal(err)
	}
	client, err := esdb.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close() // the caller's: the Store never closes it

	store, err := eventstoredb.New(client)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	res, err := store.Append(context.Background(), "order-7", es.NoStream, es.EventData{Type: "OrderPlaced"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("last revision:", res.Revision)
	// Output:
	// last revision: 0
}
