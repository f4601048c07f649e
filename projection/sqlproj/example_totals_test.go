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

// ItemAdded adds an item to the order of its stream, order-<id>.
type ItemAdded struct {
	Price int `json:"price"`
}

// createOrderTotals creates the table of a version of the read model.
func createOrderTotals(ctx context.Context, tx *sql.Tx, version int) error {
	_, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+projection.VersionedName("order_totals", version)+
		" (id TEXT PRIMARY KEY, total INTEGER NOT NULL)")
	return err
}

// addItemToTotal adds the price of an item to its order's total, in the
// table of the version being built.
func addItemToTotal(ctx context.Context, tx *sql.Tx, ev projection.Typed[ItemAdded]) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO "+projection.VersionedName("order_totals", ev.Version)+
		" (id, total) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET total = total + excluded.total",
		ev.Stream, ev.Payload.Price)
	return err
}

// addItems appends a few ItemAdded events to the event store.
func addItems(ctx context.Context, store es.Store, registry *es.Registry) error {
	for _, item := range []struct {
		order string
		price int
	}{{"order-1", 250}, {"order-2", 100}, {"order-1", 50}} {
		data, err := registry.Encode(ctx, ItemAdded{Price: item.price})
		if err != nil {
			return err
		}
		if _, err = store.Append(ctx, item.order, es.Any, data); err != nil {
			return err
		}
	}
	return nil
}

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

	registry, err := es.NewRegistry(es.Type[ItemAdded]("ItemAdded"))
	if err != nil {
		panic(err)
	}
	store := memstore.MustNew() // the event store
	if err = addItems(ctx, store, registry); err != nil {
		panic(err)
	}

	cps, err := sqlproj.New(ctx, db, sqlproj.SQLite)
	if err != nil {
		panic(err)
	}
	runner, err := projection.NewRunner(store, cps, registry, projection.Projection[*sql.Tx]{
		Name:       "order-totals",
		Categories: []string{"order"},
		Setup:      createOrderTotals,
		Handle:     projection.Dispatch(projection.On(addItemToTotal)),
		Reset:      sqlproj.ResetTables("order_totals"),
		Activate:   sqlproj.SwitchViews("order_totals"),
		Drop:       sqlproj.DropTables("order_totals"),
	})
	if err != nil {
		panic(err)
	}
	if err = runner.CatchUp(ctx); err != nil {
		panic(err)
	}

	rows, err := db.QueryContext(ctx, "SELECT id, total FROM order_totals ORDER BY id")
	if err != nil {
		panic(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var orderTotal int
		if err = rows.Scan(&id, &orderTotal); err != nil {
			panic(err)
		}
		fmt.Println(id, orderTotal)
	}
	if err = rows.Err(); err != nil {
		panic(err)
	}
	// Output:
	// order-1 300
	// order-2 100
}
