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

// LineAdded adds a line to the order of its stream, order-<id>.
type LineAdded struct {
	SKU   string `json:"sku"`
	Price int    `json:"price"`
}

// orderLines is the read model's table; each version has its own.
const orderLines = "order_lines"

// createOrderLines creates the table of a version of the read model.
func createOrderLines(ctx context.Context, tx pgx.Tx, version int) error {
	_, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+projection.VersionedName(orderLines, version)+` (
		order_id TEXT NOT NULL, line BIGINT NOT NULL, sku TEXT NOT NULL, price BIGINT NOT NULL,
		PRIMARY KEY (order_id, line))`)
	return err
}

// copyOrderLines adds a row per event, which no batch before wrote (a
// batch is applied once, with its checkpoint): COPY takes them all at once.
func copyOrderLines(ctx context.Context, tx pgx.Tx, b projection.Batch) error {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{b.Table(orderLines)}, []string{"order_id", "line", "sku", "price"},
		pgx.CopyFromSlice(len(b.Events), func(i int) ([]any, error) {
			ev := b.Events[i]
			line := ev.Payload.(LineAdded)
			return []any{ev.Stream, int64(ev.Revision), line.SKU, int64(line.Price)}, nil
		}))
	return err
}

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

	registry, err := es.NewRegistry(es.Type[LineAdded]("LineAdded"))
	if err != nil {
		log.Fatal(err)
	}
	store := memstore.MustNew() // the event store
	runner, err := projection.NewRunner(store, cps, registry, projection.Projection[pgx.Tx]{
		Name:       "order-lines",
		Categories: []string{"order"},
		Setup:      createOrderLines,
		Handle:     copyOrderLines,
		Reset:      sqlproj.PgxResetTables(orderLines),
		Activate:   sqlproj.PgxSwitchViews(orderLines),
		Drop:       sqlproj.PgxDropTables(orderLines),
	}, projection.WithBatch(5000, 100*time.Millisecond), projection.WithSkipPoison(cps))
	if err != nil {
		log.Fatal(err)
	}
	if err = runner.Rebuild(ctx, nil); err != nil {
		log.Fatal(err)
	}
}
