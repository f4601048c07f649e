package readmodel_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/example/orders/readmodel"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// databases runs test on SQLite and, when EVENTFOLD_TEST_POSTGRES is set, on
// PostgreSQL in a schema of its own.
func databases(t *testing.T, test func(t *testing.T, db *sql.DB, d sqlproj.Dialect)) {
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "orders.db")
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		test(t, db, sqlproj.SQLite)
	})
	t.Run("PostgreSQL", func(t *testing.T) { test(t, postgresDB(t), sqlproj.Postgres) })
}

// postgresDB returns a database on the PostgreSQL of EVENTFOLD_TEST_POSTGRES
// whose tables go to a schema of their own, dropped at the end, or skips.
func postgresDB(t testing.TB) *sql.DB {
	t.Helper()
	conn := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if conn == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: no PostgreSQL to test the read models on")
	}
	admin, err := sql.Open("pgx", conn)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	schema := "readmodel_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	_, err = admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	sep := "?"
	if strings.Contains(conn, "?") {
		sep = "&"
	}
	db, err := sql.Open("pgx", conn+sep+"search_path="+schema)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func TestReadModels(t *testing.T) {
	databases(t, func(t *testing.T, db *sql.DB, d sqlproj.Dialect) {
		ctx := t.Context()
		store, types := sampleOrders(t)

		cps, err := sqlproj.New(ctx, db, d)
		require.NoError(t, err)
		for _, p := range []projection.Projection[*sql.Tx]{readmodel.Summaries(), readmodel.Details()} {
			r, err := projection.NewPartitioned(store, cps, types, p)
			require.NoError(t, err)
			require.NoError(t, r.CatchUp(ctx))
		}

		q := readmodel.NewQueries(db)
		alice, err := q.CustomerOrders(ctx, "alice")
		require.NoError(t, err)
		assert.Equal(t, []readmodel.Summary{
			{OrderID: "2", CustomerID: "alice", PlacedAt: t0.Add(time.Hour), Status: order.StatusCancelled, ItemCount: 3, Total: 2250},
			{OrderID: "1", CustomerID: "alice", PlacedAt: t0, Status: order.StatusShipped, ItemCount: 3, Total: 8970},
		}, alice)
		nobody, err := q.CustomerOrders(ctx, "carol")
		require.NoError(t, err)
		assert.Empty(t, nobody)

		one, err := q.Order(ctx, "1")
		require.NoError(t, err)
		assert.Equal(t, readmodel.Detail{
			OrderID: "1", CustomerID: "alice", Status: order.StatusShipped, Subtotal: 8970, TrackingNumber: "1Z-1", Version: 2,
			Items: []readmodel.Line{
				{ProductID: "keyboard", Quantity: 1, UnitPrice: 4990, LineTotal: 4990},
				{ProductID: "mouse", Quantity: 2, UnitPrice: 1990, LineTotal: 3980},
			},
			Timeline: []readmodel.Step{
				{Status: order.StatusPending, At: t0, Detail: "2 items"},
				{Status: order.StatusConfirmed, At: t0.Add(3 * time.Hour)},
				{Status: order.StatusShipped, At: t0.Add(4 * time.Hour), Detail: "tracking number 1Z-1"},
			},
		}, one)
		_, err = q.Order(ctx, "404")
		require.ErrorIs(t, err, readmodel.ErrNotFound)

		// A blue/green rebuild keeps serving, then switches.
		r, err := projection.NewPartitioned(store, cps, types, readmodel.Summaries())
		require.NoError(t, err)
		from, to, err := r.RebuildBlueGreen(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, r.DropVersion(ctx, from))
		assert.Equal(t, [2]int{readmodel.Version, readmodel.Version + 1}, [2]int{from, to})
		again, err := q.CustomerOrders(ctx, "alice")
		require.NoError(t, err)
		assert.Equal(t, alice, again)
	})
}

// sampleOrders returns a store holding three orders: 1 placed by alice,
// confirmed and shipped; 2 placed by alice and cancelled; 3 placed by bob.
func sampleOrders(t *testing.T) (*memstore.Store, *es.Registry) {
	t.Helper()
	ctx := t.Context()
	store := memstore.MustNew()
	types, err := order.Types()
	require.NoError(t, err)
	orders, err := aggregate.New(store, types, order.Definition())
	require.NoError(t, err)
	place := func(id, customer string, at time.Time, items ...order.Item) {
		_, err := orders.Create(ctx, id, order.Place(order.PlaceOrder{OrderID: id, CustomerID: customer, Items: items, PlacedAt: at}))
		require.NoError(t, err)
	}
	place("1", "alice", t0, order.Item{ProductID: "keyboard", Quantity: 1, UnitPrice: 4990}, order.Item{ProductID: "mouse", Quantity: 2, UnitPrice: 1990})
	place("2", "alice", t0.Add(time.Hour), order.Item{ProductID: "cable", Quantity: 3, UnitPrice: 750})
	place("3", "bob", t0.Add(2*time.Hour), order.Item{ProductID: "monitor", Quantity: 1, UnitPrice: 18900})
	_, err = orders.Update(ctx, "1", order.Confirm(order.ConfirmOrder{OrderID: "1", ConfirmedAt: t0.Add(3 * time.Hour)}))
	require.NoError(t, err)
	_, err = orders.Update(ctx, "1", order.Ship(order.ShipOrder{OrderID: "1", TrackingNumber: "1Z-1", ShippedAt: t0.Add(4 * time.Hour)}))
	require.NoError(t, err)
	_, err = orders.Update(ctx, "2", order.Cancel(order.CancelOrder{OrderID: "2", Reason: "too slow", CancelledAt: t0.Add(5 * time.Hour)}))
	require.NoError(t, err)
	return store, types
}

func TestApplyingABatchTwiceChangesNothing(t *testing.T) {
	databases(t, func(t *testing.T, db *sql.DB, d sqlproj.Dialect) {
		ctx := t.Context()
		store := memstore.MustNew()
		types, err := order.Types()
		require.NoError(t, err)
		orders, err := aggregate.New(store, types, order.Definition())
		require.NoError(t, err)
		_, err = orders.Create(ctx, "1", order.Place(order.PlaceOrder{OrderID: "1", CustomerID: "alice", PlacedAt: t0,
			Items: []order.Item{{ProductID: "p", Quantity: 1, UnitPrice: 100}}}))
		require.NoError(t, err)

		// Without a transactional checkpoint (as after a crash with
		// checkpoints elsewhere), the same events arrive twice.
		var events []projection.Event
		for rec, err := range store.ReadAll(ctx, es.ReadAllOptions{}) {
			require.NoError(t, err)
			payload, err := types.Decode(rec)
			require.NoError(t, err)
			events = append(events, projection.Event{RecordedEvent: rec, Payload: payload})
		}
		cps, err := sqlproj.New(ctx, db, d)
		require.NoError(t, err)
		for _, p := range []projection.Projection[*sql.Tx]{readmodel.Summaries(), readmodel.Details()} {
			for range 2 {
				require.NoError(t, cps.Commit(ctx, fmt.Sprint(p.Name, "/v1"), projection.Checkpoint{}, func(tx *sql.Tx) error {
					if err := p.Setup(ctx, tx, 1); err != nil {
						return err
					}
					if err := p.Activate(ctx, tx, 1); err != nil {
						return err
					}
					return p.Handle(ctx, tx, projection.Batch{Projection: p.Name, Version: 1, Events: events})
				}))
			}
		}
		one, err := readmodel.NewQueries(db).Order(ctx, "1")
		require.NoError(t, err)
		assert.Len(t, one.Items, 1)
		assert.Len(t, one.Timeline, 1)
	})
}
