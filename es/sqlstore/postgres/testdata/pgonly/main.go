// Command pgonly opens the PostgreSQL event store, appends one event and
// reads it back: the smallest PostgreSQL-only program, whose binary size
// shows what the store links.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
)

func main() {
	ctx := context.Background()
	store, err := postgres.Open(ctx, os.Getenv("EVENTFOLD_TEST_POSTGRES"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	stream := "size-" + uuid.NewString()
	if _, err := store.Append(ctx, stream, es.NoStream, es.EventData{ID: uuid.New(), Type: "Sized", Data: []byte("{}")}); err != nil {
		log.Fatal(err)
	}
	for ev, err := range store.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Type)
	}
}
