package sqlite_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlite-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlstore.WithTablePrefix("orders_"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	res, err := store.Append(ctx, "order-1", es.NoStream, es.EventData{Type: "OrderPlaced", Data: []byte(`{"total":42}`)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("revision", res.Revision, "at", res.Position)
	// Output:
	// revision 0 at C:1/P:1
}
