package readmodel_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/example/orders/readmodel"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// benchOrders is the number of orders the read models hold.
const benchOrders = 2000

// BenchmarkOrderDetails reads an order's details, from 16 goroutines, from
// the SQL read model on SQLite and on PostgreSQL and from the Redis one, in
// one run: the query side of levels 2 and 3. It reports the latencies'
// median and 99th percentile besides the time per read.
func BenchmarkOrderDetails(b *testing.B) {
	ctx := b.Context()
	store := memstore.MustNew()
	types, err := order.Types()
	require.NoError(b, err)
	orders, err := aggregate.New(store, types, order.Definition())
	require.NoError(b, err)
	for i := range benchOrders {
		id := fmt.Sprint(i)
		_, err := orders.Create(ctx, id, order.Place(order.PlaceOrder{OrderID: id, CustomerID: fmt.Sprint("customer-", i%100),
			Items:    []order.Item{{ProductID: "keyboard", Quantity: 1, UnitPrice: 4990}, {ProductID: "mouse", Quantity: 2, UnitPrice: 1990}},
			PlacedAt: t0.Add(time.Duration(i) * time.Second)}))
		require.NoError(b, err)
		_, err = orders.Update(ctx, id, order.Confirm(order.ConfirmOrder{OrderID: id, ConfirmedAt: t0.Add(time.Duration(i)*time.Second + time.Minute)}))
		require.NoError(b, err)
	}

	sqlite, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "orders.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	require.NoError(b, err)
	b.Cleanup(func() { sqlite.Close() })
	build := func(db *sql.DB, d sqlproj.Dialect) {
		cps, err := sqlproj.New(ctx, db, d)
		require.NoError(b, err)
		r, err := projection.NewPartitioned(store, cps, types, readmodel.Details())
		require.NoError(b, err)
		require.NoError(b, r.CatchUp(ctx))
	}
	build(sqlite, sqlproj.SQLite)
	b.Run("SQLite", func(b *testing.B) { benchReads(b, readmodel.NewQueries(sqlite).Order) })

	b.Run("PostgreSQL", func(b *testing.B) {
		pg := postgresDB(b)
		build(pg, sqlproj.Postgres)
		benchReads(b, readmodel.NewQueries(pg).Order)
	})

	b.Run("Redis", func(b *testing.B) {
		cps, client := redisCheckpoints(b)
		r, err := projection.NewPartitioned(store, cps, types, readmodel.RedisDetails())
		require.NoError(b, err)
		require.NoError(b, r.CatchUp(ctx))
		benchReads(b, readmodel.NewRedisQueries(cps, client).Order)
	})
}

// benchReads reads random orders with read from 16 goroutines and reports
// the median and 99th percentile of the latencies.
func benchReads(b *testing.B, read func(ctx context.Context, id string) (readmodel.Detail, error)) {
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	var mu sync.Mutex
	var all []time.Duration
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			id := fmt.Sprint(rand.IntN(benchOrders))
			start := time.Now()
			if _, err := read(context.Background(), id); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(start))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "reads/s")
}
