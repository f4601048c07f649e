package projection_test

// Live latency: the time from an append to its read-your-writes answer
// (WaitFor), on memstore with in-memory checkpoints, for one client and for
// several at once, with the runner's default options.
//
//	go test -run '^$' -bench Live -benchtime 2000x -count 3 ./projection/
//
// ns/op is the benchmark's time per append (with several clients, the
// inverse of their throughput); µs/wait is the mean time a client waits
// from its append to WaitFor's answer; events/batch is the mean size of
// the batches the runner committed.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

func BenchmarkLive(b *testing.B) {
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			store := memstore.MustNew()
			var events, batches atomic.Int64
			r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), types(b), projection.Projection[projection.NoTx]{
				Name:       "count",
				Categories: []string{"counter"},
				Handle: func(ctx context.Context, _ projection.NoTx, batch projection.Batch) error {
					events.Add(int64(len(batch.Events)))
					batches.Add(1)
					return nil
				},
			}, projection.WithLogger(slog.New(slog.DiscardHandler)))
			require.NoError(b, err)
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			defer func() {
				cancel()
				require.NoError(b, <-done)
			}()

			data := es.EventData{Type: "Added", Data: []byte(`{"n":1}`)}
			var ops, waited atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for c := range clients {
				wg.Go(func() {
					stream := fmt.Sprintf("counter-%d", c)
					for ops.Add(1) <= int64(b.N) {
						began := time.Now()
						res, err := store.Append(ctx, stream, es.Any, data)
						if err == nil {
							err = r.WaitFor(ctx, res.Position)
						}
						if err != nil {
							b.Error(err)
							return
						}
						waited.Add(int64(time.Since(began)))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(waited.Load())/float64(b.N)/1e3, "µs/wait")
			if n := batches.Load(); n > 0 {
				b.ReportMetric(float64(events.Load())/float64(n), "events/batch")
			}
		})
	}
}
