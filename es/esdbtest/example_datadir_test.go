package esdbtest_test

import (
	"fmt"
	"log"
	"os"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// ExampleWithDataDir keeps the log in a directory: a server started again
// on it finds the events, and new ones continue the stream.
func ExampleWithDataDir() {
	dir, err := os.MkdirTemp("", "esdbtest-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	srv, err := esdbtest.Start(esdbtest.WithDataDir(dir))
	if err != nil {
		log.Fatal(err)
	}
	if err = srv.Seed("cart-7", esdbtest.Event{Type: "ItemAdded", Data: []byte(`{"sku":"A"}`)}); err != nil {
		log.Fatal(err)
	}
	srv.Close()

	srv, err = esdbtest.Start(esdbtest.WithDataDir(dir))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	if err = srv.Seed("cart-7", esdbtest.Event{Type: "ItemRemoved", Data: []byte(`{"sku":"A"}`)}); err != nil {
		log.Fatal(err)
	}
	for _, ev := range srv.Events("cart-7") {
		fmt.Println(ev.Stream, ev.Revision, ev.Type)
	}
	// Output:
	// cart-7 0 ItemAdded
	// cart-7 1 ItemRemoved
}
