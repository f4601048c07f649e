package sqlite_test

import (
	"context"
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

// A database in memory that lives as long as the Store: ":memory:" would
// give every connection a database of its own.
func ExampleOpen_memory() {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, "file:/example?vfs=memdb")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	_, err = store.Append(ctx, "order-1", es.NoStream, es.EventData{Type: "OrderPlaced"})
	fmt.Println(err)
	// Output:
	// <nil>
}
