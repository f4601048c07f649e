package es_test

import (
	"context"
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

// The head of the log and the last event of a stream, without writing the
// "backwards from the end, at most one" read by hand.
func ExampleHead() {
	ctx := context.Background()
	store := memstore.MustNew()
	if _, ok, err := es.Head(ctx, store); err != nil || ok {
		log.Fatal("the log is not empty", err)
	}
	for _, stream := range []string{"order-1", "order-2", "order-1"} {
		if _, err := store.Append(ctx, stream, es.Any, es.EventData{Type: "Noted", Data: []byte(`{}`)}); err != nil {
			log.Fatal(err)
		}
	}
	head, _, err := es.Head(ctx, store)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("head:", head.Stream, head.Revision)

	last, ok, err := es.LastEvent(ctx, store, "order-2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("order-2:", ok, last.Revision)
	_, ok, err = es.LastEvent(ctx, store, "order-3")
	fmt.Println("order-3:", ok, err)
	// Output:
	// head: order-1 1
	// order-2: true 0
	// order-3: false <nil>
}
