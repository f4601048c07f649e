package postgres_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold/es/sqlstore/postgres"
)

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
