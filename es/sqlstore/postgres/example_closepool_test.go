package postgres_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold/es/sqlstore/postgres"
)

// ClosePool closes a pool that the program passed to New, waiting at most
// CloseWait for the connections that an outage left to pgx's cleanup.
func ExampleClosePool() {
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	postgres.ClosePool(pool)
}
