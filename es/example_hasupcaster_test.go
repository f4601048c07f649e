package es_test

import (
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
)

// CartCheckedOut was stored as "CartClosed" by an older version of the
// program.
type CartCheckedOut struct {
	CartID string `json:"cartId"`
}

// A reader that has the events as stored only in pieces, such as a message
// from a broker, asks whether an event type is upcast before it rebuilds
// the whole event.
func ExampleRegistry_HasUpcaster() {
	types, err := es.NewRegistry(
		es.Type[CartCheckedOut]("CartCheckedOut"),
		es.Upcast("CartClosed", func(rec es.RecordedEvent) (es.RecordedEvent, error) {
			rec.Type = "CartCheckedOut"
			return rec, nil
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(types.HasUpcaster("CartClosed"), types.HasUpcaster("CartCheckedOut"))
	// Output:
	// true false
}
