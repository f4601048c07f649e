package sqlstore_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/es/sqlstore"
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
	{"MemStore", func(*testing.B) es.Store { return memstore.New() }},
	{"SQLite", func(b *testing.B) es.Store {
		s, err := sqlstore.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "events.db"))
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
			b.Run("1-parallel", func(b *testing.B) {
				store := st.open(b)
				var streams, n atomic.Int64
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					stream := "bench-" + strconv.FormatInt(streams.Add(1), 10)
					evs := benchEvents(1)
					for pb.Next() {
						_, err := store.Append(b.Context(), stream, es.Any, evs...)
						if err != nil {
							b.Error(err)
							return
						}
						n.Add(1)
					}
				})
				reportEvents(b, int(n.Load()))
			})
		})
	}
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
