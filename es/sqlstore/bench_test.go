package sqlstore_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

// Run with, for example:
//
//	EVENTFOLD_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test -run '^$' -bench . -benchtime 2s ./es/sqlstore/
//
// Every benchmark reports events/s; memstore is the baseline.

// benchStores are the stores compared, each new and empty.
var benchStores = []struct {
	name string
	open func(b *testing.B) es.Store
}{
	{"MemStore", func(*testing.B) es.Store { return memstore.MustNew() }},
	{"SQLite", func(b *testing.B) es.Store {
		s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "events.db"))
		require.NoError(b, err)
		b.Cleanup(func() { require.NoError(b, s.Close()) })
		return s
	}},
	{"Postgres", func(b *testing.B) es.Store { return openPostgres(b) }},
}

// benchEvents returns n events with a payload of about 100 bytes.
func benchEvents(n int) []es.EventData {
	evs := make([]es.EventData, n)
	for i := range evs {
		evs[i] = es.EventData{
			Type:     "OrderLinePriced",
			Data:     fmt.Appendf(nil, `{"order":"order-4711","line":%d,"sku":"SKU-0042-BLUE","quantity":3,"price":{"amount":1999,"currency":"EUR"}}`, i),
			Metadata: []byte(`{"$correlationId":"5f0c2a9e-8c1b-4d3a-9f77-2b3c1d0e9a11"}`),
		}
	}
	return evs
}

func reportEvents(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend appends batches of 1 and 100 events to one stream, one
// append at a time, and batches of 1 from parallel goroutines (one stream
// each).
func BenchmarkAppend(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			for _, size := range []int{1, 100} {
				b.Run(strconv.Itoa(size), func(b *testing.B) {
					store := st.open(b)
					evs := benchEvents(size)
					n := 0
					for b.Loop() {
						_, err := store.Append(b.Context(), "bench", es.Any, evs...)
						require.NoError(b, err)
						n += size
					}
					reportEvents(b, n)
				})
			}
			b.Run("1x16", func(b *testing.B) {
				store := st.open(b)
				evs := benchEvents(1)
				parallel(b, 16, func(w int) func() error {
					stream := "bench-" + strconv.Itoa(w)
					return func() error {
						_, err := store.Append(b.Context(), stream, es.Any, evs...)
						return err
					}
				})
			})
		})
	}
}

// parallel runs b.N calls in all from writers goroutines, each calling the
// function that work returns for it, and reports events/s (one event a
// call).
func parallel(b *testing.B, writers int, work func(w int) func() error) {
	var (
		calls atomic.Int64
		wg    sync.WaitGroup
	)
	fns := make([]func() error, writers)
	for w := range fns {
		fns[w] = work(w)
	}
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			for calls.Add(1) <= int64(b.N) {
				if err := fns[w](); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	reportEvents(b, b.N)
}

// benchLog is the size of the log that the read benchmarks rebuild from.
const benchLog = 100_000

// seed appends benchLog events, in appends of 1000 to 100 streams.
func seed(b *testing.B, store es.Store) {
	b.Helper()
	evs := benchEvents(1000)
	for i := range benchLog / len(evs) {
		_, err := store.Append(b.Context(), "order-"+strconv.Itoa(i%100), es.Any, evs...)
		require.NoError(b, err)
	}
}

// BenchmarkReadAll reads the whole log of 100,000 events forwards, as a
// projection rebuild does.
func BenchmarkReadAll(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			store := st.open(b)
			seed(b, store)
			n := 0
			for b.Loop() {
				read := 0
				for _, err := range store.ReadAll(b.Context(), es.ReadAllOptions{}) {
					require.NoError(b, err)
					read++
				}
				require.Equal(b, benchLog, read)
				n += read
			}
			reportEvents(b, n)
		})
	}
}

// BenchmarkSubscribeAllCatchUp subscribes to `$all` from the start of a log
// of 100,000 events and stops at caught-up.
func BenchmarkSubscribeAllCatchUp(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			store := st.open(b)
			seed(b, store)
			n := 0
			for b.Loop() {
				read := 0
				for msg, err := range store.SubscribeAll(b.Context(), es.SubscribeAllOptions{From: es.Start}) {
					require.NoError(b, err)
					if msg.Kind == es.KindCaughtUp {
						break
					}
					read++
				}
				require.Equal(b, benchLog, read)
				n += read
			}
			reportEvents(b, n)
		})
	}
}

// BenchmarkAppendRawPostgres is the baseline of the PostgreSQL appends: the
// same rows as an append of one event writes to the events table, inserted
// by hand-written pgx statements, each in a transaction of its own (no
// expected-revision check, no ordering of positions), from 1 and 16
// connections.
func BenchmarkAppendRawPostgres(b *testing.B) {
	url := postgresURL(b)
	schema := newSchema(b, url)
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(b, err)
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(b.Context(), cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	table := pgx.Identifier{schema, "raw_events"}.Sanitize()
	_, err = pool.Exec(b.Context(), "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	require.NoError(b, err)
	_, err = pool.Exec(b.Context(), `CREATE TABLE `+table+` (
		position bigserial PRIMARY KEY, stream text NOT NULL, revision bigint NOT NULL, id uuid NOT NULL,
		type text NOT NULL, content_type text NOT NULL, data bytea, metadata bytea, created bigint NOT NULL,
		UNIQUE (stream, revision))`)
	require.NoError(b, err)
	insert := "INSERT INTO " + table + " (stream, revision, id, type, content_type, data, metadata, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
	ev := benchEvents(1)[0]
	run := 0
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("1x%d", writers), func(b *testing.B) {
			run++
			parallel(b, writers, func(w int) func() error {
				stream := fmt.Sprintf("bench-%d-%d", run, w)
				rev := 0
				return func() error {
					_, err := pool.Exec(b.Context(), insert, stream, rev, uuid.New(), ev.Type, "application/json", ev.Data, ev.Metadata, time.Now().UnixNano())
					rev++
					return err
				}
			})
		})
	}
}

// counted is the event of the commands benchmark.
type counted struct {
	N int `json:"n"`
}

// BenchmarkCommandsPostgres runs commands from 8 goroutines, each on
// streams of its own (100 each, in turn): read the stream, fold it, append
// one event at the expected revision. "eventfold" goes through an
// aggregate.Repository on the PostgreSQL store; "pgx" is the baseline, a
// hand-written pgx loop doing the same read, insert and commit on tables
// of the same shape (one query for the events; BEGIN, the stream's row, the
// event and COMMIT in one batch, the unique (stream, revision) key as the
// check). Run with -count to interleave the two.
func BenchmarkCommandsPostgres(b *testing.B) {
	const writers, streams = 8, 100
	url := postgresURL(b)
	b.Run("pgx", func(b *testing.B) {
		schema := newSchema(b, url)
		cfg, err := pgxpool.ParseConfig(url)
		require.NoError(b, err)
		cfg.MaxConns = writers
		pool, err := pgxpool.NewWithConfig(b.Context(), cfg)
		require.NoError(b, err)
		b.Cleanup(pool.Close)
		sc := pgx.Identifier{schema}.Sanitize()
		for _, ddl := range []string{
			"CREATE SCHEMA IF NOT EXISTS " + sc,
			"CREATE TABLE " + sc + ".streams (name text PRIMARY KEY, last_revision bigint NOT NULL)",
			"CREATE TABLE " + sc + `.events (position bigserial PRIMARY KEY, stream text NOT NULL REFERENCES ` + sc + `.streams (name),
				revision bigint NOT NULL, id uuid NOT NULL, type text NOT NULL, content_type text NOT NULL,
				data bytea, metadata bytea, created bigint NOT NULL, UNIQUE (stream, revision))`,
		} {
			_, err := pool.Exec(b.Context(), ddl)
			require.NoError(b, err)
		}
		read := "SELECT revision, data FROM " + sc + ".events WHERE stream = $1 ORDER BY revision"
		upsert := "INSERT INTO " + sc + ".streams (name, last_revision) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET last_revision = excluded.last_revision"
		insert := "INSERT INTO " + sc + ".events (stream, revision, id, type, content_type, data, metadata, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
		parallel(b, writers, func(w int) func() error {
			k := 0
			return func() error {
				stream := fmt.Sprintf("counter-%d-%d", w, k%streams)
				k++
				rows, err := pool.Query(b.Context(), read, stream)
				if err != nil {
					return err
				}
				state, next := 0, int64(0)
				for rows.Next() {
					var (
						rev  int64
						data []byte
						e    counted
					)
					if err := rows.Scan(&rev, &data); err != nil {
						return err
					}
					if err := json.Unmarshal(data, &e); err != nil {
						return err
					}
					state, next = state+e.N, rev+1
				}
				if err := rows.Err(); err != nil {
					return err
				}
				data, err := json.Marshal(counted{N: state%7 + 1})
				if err != nil {
					return err
				}
				batch := &pgx.Batch{}
				batch.Queue("BEGIN")
				batch.Queue(upsert, stream, next)
				batch.Queue(insert, stream, next, uuid.New(), "Counted", "application/json", data, nil, time.Now().UnixNano())
				batch.Queue("COMMIT")
				return pool.SendBatch(b.Context(), batch).Close()
			}
		})
	})
	b.Run("eventfold", func(b *testing.B) {
		// The baseline's pool, and one connection more: the store's writer keeps one.
		store, err := postgres.Open(b.Context(), url+"&pool_max_conns="+strconv.Itoa(writers+1), sqlstore.WithSchema(newSchema(b, url)))
		require.NoError(b, err)
		b.Cleanup(func() { require.NoError(b, store.Close()) })
		var groups atomic.Int64
		sqlstore.SetGroupHook(store, func(int) { groups.Add(1) })
		defer func() { b.ReportMetric(float64(b.N)/float64(groups.Load()), "appends/group") }()
		types, err := es.NewRegistry(es.Type[counted]("Counted"))
		require.NoError(b, err)
		repo, err := aggregate.New(store, types, aggregate.Definition[int, counted]{
			Category: "counter",
			Evolve:   func(s int, e counted) int { return s + e.N },
		})
		require.NoError(b, err)
		parallel(b, writers, func(w int) func() error {
			k := 0
			return func() error {
				id := fmt.Sprintf("%d-%d", w, k%streams)
				k++
				decide := func(s int) ([]counted, error) { return []counted{{N: s%7 + 1}}, nil }
				if k <= streams {
					_, err := repo.Create(b.Context(), id, decide)
					return err
				}
				_, err := repo.Update(b.Context(), id, decide)
				return err
			}
		})
	})
}

// BenchmarkAppendStreams writes one event to each of two streams: in one
// multi-stream append (one transaction), and in two Appends (two), one
// write at a time.
func BenchmarkAppendStreams(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			evs := benchEvents(1)
			b.Run("AppendStreams", func(b *testing.B) {
				store := st.open(b)
				n := 0
				for b.Loop() {
					_, err := es.AppendStreams(b.Context(), store,
						es.StreamAppend{Stream: "bench-a", Expected: es.Any, Events: evs},
						es.StreamAppend{Stream: "bench-b", Expected: es.Any, Events: evs})
					require.NoError(b, err)
					n += 2
				}
				reportEvents(b, n)
			})
			b.Run("TwoAppends", func(b *testing.B) {
				store := st.open(b)
				n := 0
				for b.Loop() {
					for _, stream := range []string{"bench-a", "bench-b"} {
						_, err := store.Append(b.Context(), stream, es.Any, evs...)
						require.NoError(b, err)
					}
					n += 2
				}
				reportEvents(b, n)
			})
		})
	}
}
