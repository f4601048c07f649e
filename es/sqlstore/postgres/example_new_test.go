package postgres_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
)

// One pool for the event store and the rest of the program (read models,
// an outbox): the program owns it and closes it after the store.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer postgres.ClosePool(pool) // after store.Close, which leaves the pool open
	store, err := postgres.New(ctx, pool, sqlstore.WithSchema("orders"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// The read models, through database/sql, on the same pool.
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
}
