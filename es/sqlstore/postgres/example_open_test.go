package postgres_test

import (
	"context"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
)

func ExampleOpen() {
	ctx := context.Background()
	store, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		sqlstore.WithSchema("orders"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	_, err = store.Append(ctx, "order-1", es.Any, es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)})
	if err != nil {
		log.Fatal(err)
	}
}
