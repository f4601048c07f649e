package postgres_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

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

// A pool of 32 connections, owned by the store.
func ExampleOpenConfig() {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	cfg.MaxConns = 32
	store, err := postgres.OpenConfig(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // closes the pool
}

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
	_, err = store.Append(ctx, "order-1", es.Any, es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)})
	if err != nil {
		log.Fatal(err)
	}
}

// ClosePool closes a pool that the program passed to New, waiting at most
// CloseWait for the connections that an outage left to pgx's cleanup.
func ExampleClosePool() {
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	postgres.ClosePool(pool)
}
