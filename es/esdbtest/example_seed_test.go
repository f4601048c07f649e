package esdbtest_test

import (
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// ExampleServer_Seed writes events without a client and inspects the log.
func ExampleServer_Seed() {
	srv, err := esdbtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	if err = srv.Seed("cart-7", esdbtest.Event{Type: "ItemAdded", Data: []byte(`{"sku":"A"}`)}); err != nil {
		log.Fatal(err)
	}
	for _, ev := range srv.Events("cart-7") {
		fmt.Println(ev.Stream, ev.Revision, ev.Type, ev.ContentType)
	}
	// Output:
	// cart-7 0 ItemAdded application/json
}
