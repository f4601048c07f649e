package sqlproj_test

// Rebuild benchmarks: 100,000 events from a memstore into a read model of
// per-stream totals (20,000 streams, events interleaved), in memory (the
// baseline), in SQLite and in PostgreSQL, checkpoints in the read model's
// transaction, batches of 2,000 events written with multi-row upserts.
//
//	EVENTFOLD_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//		go test -run '^$' -bench Rebuild -benchmem -benchtime 3x ./projection/sqlproj/
//
// BenchmarkRebuild/postgres-ledger compares, on PostgreSQL, rebuilds of a
// read model of one row per event with loops that write the same rows
// without eventfold (see benchLedger).
//
// events/s counts the events replayed per second of the benchmark's time;
// MB-heap-peak is the largest HeapInuse sampled during the run (it includes
// the memstore's log, about the same in every case).

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

const (
	benchEvents  = 100_000
	benchStreams = 20_000
	benchBatch   = 2_000
)

var (
	benchOnce  sync.Once
	benchStore *memstore.Store
)

// benchLog returns the memstore of the benchmarks, seeded once.
func benchLog(b *testing.B) *memstore.Store {
	benchOnce.Do(func() {
		store := memstore.MustNew()
		for i := range benchEvents {
			_, err := store.Append(b.Context(), fmt.Sprintf("counter-%d", i%benchStreams), es.Any,
				es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, i%100)})
			require.NoError(b, err)
		}
		benchStore = store
	})
	return benchStore
}

func BenchmarkRebuild(b *testing.B) {
	store := benchLog(b)
	b.Run("memory", func(b *testing.B) {
		m := &memTotals{}
		r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), types(b), m.projection(),
			projection.WithBatch(benchBatch, 100*time.Millisecond), projection.WithLogger(quiet))
		require.NoError(b, err)
		benchRebuild(b, r.Rebuild)
		require.Len(b, m.sums, benchStreams)
	})
	b.Run("sqlite", func(b *testing.B) {
		db := openSQLite(b, filepath.Join(b.TempDir(), "bench.db"))
		benchSQL(b, store, db, sqlproj.SQLite)
	})
	b.Run("postgres", func(b *testing.B) {
		db := openPostgres(b, postgresSchema(b))
		benchSQL(b, store, db, sqlproj.Postgres)
	})
	b.Run("postgres-pgx-merge", func(b *testing.B) {
		dsn := postgresSchema(b)
		db := openPostgres(b, dsn)
		cps := newPgxCheckpoints(b, openPool(b, dsn))
		m := newTotals(pgxBackend, "totals")
		p := m.projection("totals")
		p.Handle = m.copyMerge
		r := newRunner(b, store, cps, p, projection.WithBatch(benchBatch, 100*time.Millisecond))
		benchRebuild(b, r.Rebuild)
		var n, events int64
		require.NoError(b, db.QueryRowContext(b.Context(), "SELECT count(*), sum(events) FROM totals").Scan(&n, &events))
		require.Equal(b, int64(benchStreams), n)
		require.Equal(b, int64(benchEvents), events)
	})
	b.Run("postgres-ledger", func(b *testing.B) { benchLedger(b, store) })
}

func benchSQL(b *testing.B, store es.Store, sqlDB *sql.DB, d sqlproj.Dialect) {
	cps := newCheckpoints(b, sqlDB, d)
	be := sqliteBackend
	if d == sqlproj.Postgres {
		be = postgresBackend
	}
	m := newTotals(be, "totals")
	r := newRunner(b, store, cps, m.projection("totals"), projection.WithBatch(benchBatch, 100*time.Millisecond))
	benchRebuild(b, r.Rebuild)
	var n, events int64
	require.NoError(b, sqlDB.QueryRowContext(b.Context(), "SELECT count(*), sum(events) FROM totals").Scan(&n, &events))
	require.Equal(b, int64(benchStreams), n)
	require.Equal(b, int64(benchEvents), events)
}

// benchRebuild runs rebuild b.N times and reports events/s and the peak
// heap.
func benchRebuild(b *testing.B, rebuild func(context.Context, func(projection.Progress)) error) {
	stop := sampleHeap(b)
	n := 0
	for b.Loop() {
		require.NoError(b, rebuild(b.Context(), nil))
		n++
	}
	stop()
	b.ReportMetric(float64(n*benchEvents)/b.Elapsed().Seconds(), "events/s")
}

// sampleHeap samples HeapInuse every 10ms in a goroutine until the
// returned function is called, which reports the largest in MB.
func sampleHeap(b *testing.B) (stop func()) {
	done := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var top uint64
		var ms runtime.MemStats
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			top = max(top, ms.HeapInuse)
			select {
			case <-done:
				peak <- top
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		b.ReportMetric(float64(<-peak)/(1<<20), "MB-heap-peak")
	}
}

// memTotals is the in-memory read model of the baseline.
type memTotals struct {
	sums map[string]total
}

func (m *memTotals) projection() projection.Projection[projection.NoTx] {
	return projection.Projection[projection.NoTx]{
		Name:       "mem-totals",
		Categories: []string{"counter"},
		Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
			for _, ev := range b.Events {
				t := m.sums[ev.Stream]
				t.Total += int64(ev.Payload.(Added).N)
				t.Events++
				t.LastRevision = int64(ev.Revision)
				m.sums[ev.Stream] = t
			}
			return nil
		},
		Reset: func(ctx context.Context, _ projection.NoTx, version int) error {
			m.sums = make(map[string]total)
			return nil
		},
	}
}

// benchLedger runs interleaved rounds on PostgreSQL of the same work, the
// same 100,000 events read from the memstore and decoded, written as one
// row per event in transactions of 2,000 rows, committed one by one:
//
//   - copy-loop: a loop that COPYs each batch (pgx's CopyFrom), the
//     baseline;
//   - upsert-loop: a loop that writes each batch with one multi-row
//     upsert;
//   - sql: a rebuild through [sqlproj.Checkpoints] (database/sql over
//     pgx's stdlib driver), handler writing multi-row upserts;
//   - pgx-upsert: a rebuild through [sqlproj.PgxCheckpoints], same
//     upserts;
//   - pgx-copy: a rebuild through [sqlproj.PgxCheckpoints], handler
//     COPYing each batch.
//
// Each round runs the five once, in an order rotated from round to round;
// every write starts from an empty table (TRUNCATE). It reports each one's
// events/s over all rounds and, for the rebuilds, the median over the
// rounds of their ratio to each loop of the same round (x-<rebuild>/<loop>).
func benchLedger(b *testing.B, store *memstore.Store) {
	ctx := b.Context()
	dsn := postgresSchema(b)
	pool := openPool(b, dsn)
	sqlDB := openPostgres(b, dsn)
	types := types(b)
	for _, table := range []string{"loop_copy", "loop_upsert"} {
		_, err := pool.Exec(ctx, ledgerDDL(table))
		require.NoError(b, err)
	}
	pgxCps := newPgxCheckpoints(b, pool)
	rebuilder := func(m *ledger) func() error {
		r := newRunner(b, store, pgxCps, m.projection(m.table), projection.WithBatch(benchBatch, 100*time.Millisecond))
		return func() error { return r.Rebuild(ctx, nil) }
	}
	sqlR := newRunner(b, store, newCheckpoints(b, sqlDB, sqlproj.Postgres), sqlLedger("sql_ledger"),
		projection.WithBatch(benchBatch, 100*time.Millisecond))
	type variant struct {
		name, table string
		run         func() error
		total       time.Duration
		rates       []float64 // events/s of each round
	}
	variants := []*variant{
		{name: "copy-loop", table: "loop_copy", run: func() error { return ledgerLoop(ctx, store, types, pool, "loop_copy", copyRows) }},
		{name: "upsert-loop", table: "loop_upsert", run: func() error { return ledgerLoop(ctx, store, types, pool, "loop_upsert", upsertRows) }},
		{name: "sql", table: "sql_ledger_v1", run: func() error { return sqlR.Rebuild(ctx, nil) }},
		{name: "pgx-upsert", table: "pgx_upsert_v1", run: rebuilder(&ledger{table: "pgx_upsert"})},
		{name: "pgx-copy", table: "pgx_copy_v1", run: rebuilder(&ledger{table: "pgx_copy", copyFrom: 100})},
	}
	round := 0
	for b.Loop() {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			start := time.Now()
			require.NoError(b, v.run(), v.name)
			d := time.Since(start)
			v.total += d
			v.rates = append(v.rates, benchEvents/d.Seconds())
		}
		round++
	}
	byName := make(map[string]*variant)
	for _, v := range variants {
		byName[v.name] = v
		var n int64
		require.NoError(b, pool.QueryRow(ctx, "SELECT count(*) FROM "+v.table).Scan(&n))
		require.Equal(b, int64(benchEvents), n, v.name)
		b.ReportMetric(float64(round*benchEvents)/v.total.Seconds(), "ev/s-"+v.name)
	}
	for _, rebuild := range []string{"sql", "pgx-upsert", "pgx-copy"} {
		for _, loop := range []string{"copy-loop", "upsert-loop"} {
			ratios := make([]float64, round)
			for i := range ratios {
				ratios[i] = byName[rebuild].rates[i] / byName[loop].rates[i]
			}
			b.ReportMetric(median(ratios), "x-"+rebuild+"/"+loop)
			b.Logf("%s/%s ratios by round: %.3f", rebuild, loop, ratios)
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ledgerLoop writes the rows of ledger without eventfold: it empties
// table, reads the events from store, decodes them and writes them with
// write in transactions of benchBatch rows.
func ledgerLoop(ctx context.Context, store es.Store, types *es.Registry, pool *pgxpool.Pool, table string,
	write func(ctx context.Context, tx pgx.Tx, table string, rows [][]any) error) error {
	if _, err := pool.Exec(ctx, "TRUNCATE "+table); err != nil {
		return err
	}
	flush := func(rows [][]any) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if err := write(ctx, tx, table, rows); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	rows := make([][]any, 0, benchBatch)
	for ev, err := range store.ReadAll(ctx, es.ReadAllOptions{}) {
		if err != nil {
			return err
		}
		if ev.IsSystem() || !strings.HasPrefix(ev.Stream, "counter-") {
			continue
		}
		payload, err := types.Decode(ev)
		if err != nil {
			return err
		}
		rows = append(rows, []any{ev.Stream, int64(ev.Revision), int64(payload.(Added).N)})
		if len(rows) == benchBatch {
			if err := flush(rows); err != nil {
				return err
			}
			rows = make([][]any, 0, benchBatch)
		}
	}
	if len(rows) > 0 {
		return flush(rows)
	}
	return nil
}

// sqlLedger is ledger's read model on [sqlproj.Checkpoints], written with
// multi-row upserts.
func sqlLedger(name string) projection.Projection[*sql.Tx] {
	return projection.Projection[*sql.Tx]{
		Name:       name,
		Categories: []string{"counter"},
		Setup: func(ctx context.Context, tx *sql.Tx, version int) error {
			_, err := tx.ExecContext(ctx, ledgerDDL(projection.VersionedName(name, version)))
			return err
		},
		Reset: func(ctx context.Context, tx *sql.Tx, version int) error {
			_, err := tx.ExecContext(ctx, "TRUNCATE "+projection.VersionedName(name, version))
			return err
		},
		Handle: func(ctx context.Context, tx *sql.Tx, b projection.Batch) error {
			rows := make([][]any, len(b.Events))
			for i, ev := range b.Events {
				rows[i] = []any{ev.Stream, int64(ev.Revision), int64(ev.Payload.(Added).N)}
			}
			query, args := upsertStatement(b.Table(name), rows)
			_, err := tx.ExecContext(ctx, query, args...)
			return err
		},
	}
}
