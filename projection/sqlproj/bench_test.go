package sqlproj_test

// Rebuild benchmarks: 100,000 events from a memstore into a read model of
// per-stream totals (20,000 streams, events interleaved), in memory (the
// baseline), in SQLite and in PostgreSQL, checkpoints in the read model's
// transaction, batches of 2,000 events written with multi-row upserts.
//
//	EVENTFOLD_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//		go test -run '^$' -bench Rebuild -benchmem -benchtime 3x ./projection/sqlproj/
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
	"sync"
	"testing"
	"time"

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
		store := memstore.New()
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
}

func benchSQL(b *testing.B, store es.Store, sqlDB *sql.DB, d sqlproj.Dialect) {
	cps := newCheckpoints(b, sqlDB, d)
	m := &totals{table: "totals", dialect: d}
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
