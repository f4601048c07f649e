package kurrentdb_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	kdb "github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/kurrentdb"
)

// The Store against the esdbtest command reporting KurrentDB 25.0; in
// production the connection string points at KurrentDB, such as
// "kurrentdb://localhost:2113?tls=false".
func ExampleOpen() {
	conn, stop := runESDBTest("25.0.0")
	defer stop()

	store, err := kurrentdb.Open(conn)
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
	fmt.Println("order-42 is at revision", res.Revision)
	// Output: order-42 is at revision 1
}

// New wraps a client the program made itself and keeps owning.
func ExampleNew() {
	conn, stop := runESDBTest("25.0.0")
	defer stop()

	cfg, err := kdb.ParseConnectionString(conn)
	if err != nil {
		log.Fatal(err)
	}
	cfg.Logger = kdb.NoopLogging()
	client, err := kdb.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	store, err := kurrentdb.New(client)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // leaves the client open

	_, err = store.Append(context.Background(), "order-7", es.NoStream, es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)})
	fmt.Println(err)
	// Output: <nil>
}

// Moving stock between two warehouses: both streams change, or neither.
// Metadata of a multi-stream append is a JSON object of strings.
func ExampleStore_AppendStreams() {
	conn, stop := runESDBTest("25.0.0")
	defer stop()
	store, err := kurrentdb.Open(conn)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx := context.Background()
	meta := []byte(`{"correlation":"transfer-1"}`)
	res, err := es.AppendStreams(ctx, store,
		es.StreamAppend{Stream: "warehouse-a", Expected: es.NoStream, Events: []es.EventData{
			{Type: "StockRemoved", Data: []byte(`{"sku":"x","n":2}`), Metadata: meta}}},
		es.StreamAppend{Stream: "warehouse-b", Expected: es.NoStream, Events: []es.EventData{
			{Type: "StockAdded", Data: []byte(`{"sku":"x","n":2}`), Metadata: meta}}},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(res), "streams written")

	// The same append again expects streams that now exist: nothing is written.
	_, err = es.AppendStreams(ctx, store,
		es.StreamAppend{Stream: "warehouse-a", Expected: es.NoStream, Events: []es.EventData{{Type: "StockRemoved", Data: []byte(`{}`)}}},
		es.StreamAppend{Stream: "warehouse-c", Expected: es.NoStream, Events: []es.EventData{{Type: "StockAdded", Data: []byte(`{}`)}}},
	)
	var wrong *es.WrongExpectedVersionError
	fmt.Println(errors.As(err, &wrong), wrong.Stream)
	// Output:
	// 2 streams written
	// true warehouse-a
}
