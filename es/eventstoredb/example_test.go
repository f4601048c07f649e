package eventstoredb_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
)

// The adapter against the in-process server; in production the connection
// string points at EventStoreDB, such as "esdb://localhost:2113?tls=false".
func ExampleNew() {
	srv, err := esdbtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	store, err := eventstoredb.New(srv.ConnectionString())
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
