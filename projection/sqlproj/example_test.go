package sqlproj_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// A read model of order totals in SQLite: the handler writes to the
// version's table in the transaction that records the checkpoint, and
// queries read the view that Activate points at the active version.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlproj-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		panic(err)
	}
	defer db.Close()

	// The event store, with a few events.
	type ItemAdded struct {
		Price int `json:"price"`
	}
	types, err := es.NewRegistry(es.Type[ItemAdded]("ItemAdded"))
	if err != nil {
		panic(err)
	}
	store := memstore.MustNew()
	for _, e := range []struct {
		order string
		price int
	}{{"order-1", 250}, {"order-2", 100}, {"order-1", 50}} {
		data, err := types.Encode(ctx, ItemAdded{Price: e.price})
		if err != nil {
			panic(err)
		}
		if _, err := store.Append(ctx, e.order, es.Any, data); err != nil {
			panic(err)
		}
	}

	cps, err := sqlproj.New(ctx, db, sqlproj.SQLite)
	if err != nil {
		panic(err)
	}
	runner, err := projection.NewRunner(store, cps, types, projection.Projection[*sql.Tx]{
		Name:       "order-totals",
		Categories: []string{"order"},
		Setup: func(ctx context.Context, tx *sql.Tx, version int) error {
			_, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+projection.VersionedName("order_totals", version)+
				" (id TEXT PRIMARY KEY, total INTEGER NOT NULL)")
			return err
		},
		Handle: projection.Dispatch(
			projection.On(func(ctx context.Context, tx *sql.Tx, ev projection.Typed[ItemAdded]) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO "+projection.VersionedName("order_totals", ev.Version)+
					" (id, total) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET total = total + excluded.total",
					ev.Stream, ev.Payload.Price)
				return err
			}),
		),
		Reset:    sqlproj.ResetTables("order_totals"),
		Activate: sqlproj.SwitchViews("order_totals"),
		Drop:     sqlproj.DropTables("order_totals"),
	})
	if err != nil {
		panic(err)
	}
	if err := runner.CatchUp(ctx); err != nil {
		panic(err)
	}

	rows, err := db.QueryContext(ctx, "SELECT id, total FROM order_totals ORDER BY id")
	if err != nil {
		panic(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var total int
		if err := rows.Scan(&id, &total); err != nil {
			panic(err)
		}
		fmt.Println(id, total)
	}
	if err := rows.Err(); err != nil {
		panic(err)
	}
	// Output:
	// order-1 300
	// order-2 100
}
