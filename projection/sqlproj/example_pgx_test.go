package sqlproj_test

import (
	"context"
	"log"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// A read model of order lines on PostgreSQL through a pgx pool: the
// handler COPYs the rows of each batch into the version's table, in the
// transaction that records the checkpoint. This example only compiles: it
// needs a PostgreSQL server.
func ExampleNewPgx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	cps, err := sqlproj.NewPgx(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}

	type ItemAdded struct {
		SKU   string `json:"sku"`
		Price int    `json:"price"`
	}
	types, err := es.NewRegistry(es.Type[ItemAdded]("ItemAdded"))
	if err != nil {
		log.Fatal(err)
	}
	store := memstore.MustNew() // the event store
	const lines = "order_lines"
	runner, err := projection.NewRunner(store, cps, types, projection.Projection[pgx.Tx]{
		Name:       "order-lines",
		Categories: []string{"order"},
		Setup: func(ctx context.Context, tx pgx.Tx, version int) error {
			_, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+projection.VersionedName(lines, version)+` (
				order_id TEXT NOT NULL, line BIGINT NOT NULL, sku TEXT NOT NULL, price BIGINT NOT NULL,
				PRIMARY KEY (order_id, line))`)
			return err
		},
		// Each event adds a row, which no batch before wrote (a batch is
		// applied once, with its checkpoint): COPY takes them all at once.
		Handle: func(ctx context.Context, tx pgx.Tx, b projection.Batch) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{b.Table(lines)}, []string{"order_id", "line", "sku", "price"},
				pgx.CopyFromSlice(len(b.Events), func(i int) ([]any, error) {
					ev := b.Events[i]
					item := ev.Payload.(ItemAdded)
					return []any{ev.Stream, int64(ev.Revision), item.SKU, int64(item.Price)}, nil
				}))
			return err
		},
		Reset:    sqlproj.PgxResetTables(lines),
		Activate: sqlproj.PgxSwitchViews(lines),
		Drop:     sqlproj.PgxDropTables(lines),
	}, projection.WithBatch(5000, 100*time.Millisecond), projection.WithSkipPoison(cps))
	if err != nil {
		log.Fatal(err)
	}
	if err := runner.Rebuild(ctx, nil); err != nil {
		log.Fatal(err)
	}
}
