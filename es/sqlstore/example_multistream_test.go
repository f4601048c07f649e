package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

// Two streams written in one transaction: both parts, or neither.
func ExampleStore_AppendStreams() {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, "file:/example-append-streams?vfs=memdb")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	results, err := es.AppendStreams(ctx, store,
		es.StreamAppend{Stream: "order-1", Expected: es.NoStream, Events: []es.EventData{
			{Type: "OrderPlaced", Data: []byte(`{"sku":"tea","qty":2}`)},
		}},
		es.StreamAppend{Stream: "stock-tea", Expected: es.Any, Events: []es.EventData{
			{Type: "StockReserved", Data: []byte(`{"order":"order-1","qty":2}`)},
		}},
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, res := range results {
		fmt.Println("revision", res.Revision, "at", res.Position)
	}

	// order-1 exists: the first part fails, and the second is not written.
	_, err = es.AppendStreams(ctx, store,
		es.StreamAppend{Stream: "order-1", Expected: es.NoStream, Events: []es.EventData{{Type: "OrderPlaced"}}},
		es.StreamAppend{Stream: "stock-tea", Expected: es.Any, Events: []es.EventData{{Type: "StockReserved"}}},
	)
	fmt.Println(errors.Is(err, es.ErrWrongExpectedVersion))
	for ev, err := range store.ReadStream(ctx, "stock-tea", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Revision, ev.Type)
	}
	// Output:
	// revision 0 at C:1/P:1
	// revision 0 at C:2/P:2
	// true
	// 0 StockReserved
}
