package es_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

// ExampleAppendStreams moves stock between two warehouses in one atomic
// write: both streams are appended to, or neither.
func ExampleAppendStreams() {
	ctx := context.Background()
	store := memstore.MustNew()
	moved := func(typ string) es.EventData {
		return es.EventData{Type: typ, Data: []byte(`{"sku":"A-1","qty":3}`)}
	}
	res, err := es.AppendStreams(ctx, store,
		es.StreamAppend{Stream: "warehouse-north", Expected: es.NoStream, Events: []es.EventData{moved("StockShipped")}},
		es.StreamAppend{Stream: "warehouse-south", Expected: es.NoStream, Events: []es.EventData{moved("StockReceived")}},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("north at", res[0].Revision, "south at", res[1].Revision)

	// A wrong expected revision on one part writes neither.
	_, err = es.AppendStreams(ctx, store,
		es.StreamAppend{Stream: "warehouse-north", Expected: es.Exact(0), Events: []es.EventData{moved("StockShipped")}},
		es.StreamAppend{Stream: "warehouse-south", Expected: es.NoStream, Events: []es.EventData{moved("StockReceived")}},
	)
	fmt.Println(errors.Is(err, es.ErrWrongExpectedVersion))
	n := 0
	for range store.ReadStream(ctx, "warehouse-north", es.ReadStreamOptions{}) {
		n++
	}
	fmt.Println("north holds", n)
	// Output:
	// north at 0 south at 0
	// true
	// north holds 1
}
