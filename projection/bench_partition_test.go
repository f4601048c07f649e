package projection_test

// A CPU-bound rebuild of 100,000 events by a partitioned projection (8
// partitions), with 1 worker and with 2, on memstore; the read model and
// the checkpoints are in memory, locked per partition, so that nothing but
// the runner decides how much runs at once. Each event costs the handler
// about 10µs of CPU (SHA-256 rounds), standing in for a projection that
// computes.
//
//	go test -run '^$' -bench ParallelRebuild -benchtime 3x -count 3 ./projection/
//
// events/s is the rebuild's throughput; load1 is the machine's one-minute
// load average when the benchmark ends, to read the figures by.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// keyedCheckpoints keeps checkpoints in memory and runs each commit under
// its key's lock alone, so that partitions commit in parallel.
type keyedCheckpoints struct {
	mu   sync.Mutex
	keys map[string]*keyed
}

type keyed struct {
	mu sync.Mutex
	cp projection.Checkpoint
}

func (k *keyedCheckpoints) of(key string) *keyed {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]*keyed{}
	}
	if k.keys[key] == nil {
		k.keys[key] = &keyed{}
	}
	return k.keys[key]
}

func (k *keyedCheckpoints) Load(ctx context.Context, key string) (projection.Checkpoint, error) {
	c := k.of(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cp, nil
}

func (k *keyedCheckpoints) Commit(ctx context.Context, key string, cp projection.Checkpoint, apply func(projection.NoTx) error) error {
	c := k.of(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if apply != nil {
		if err := apply(projection.NoTx{}); err != nil {
			return err
		}
	}
	c.cp = cp
	return nil
}

var rebuildLog = sync.OnceValues(func() (*memstore.Store, error) {
	store, err := memstore.New()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	for i := range 100_000 {
		data := fmt.Appendf(nil, `{"n":%d}`, i)
		if _, err := store.Append(ctx, fmt.Sprintf("acct-%d", i%1000), es.Any, es.EventData{Type: "Deposited", Data: data}); err != nil {
			return nil, err
		}
	}
	return store, nil
})

// burn spends about 10µs of CPU on data.
func burn(data []byte) [32]byte {
	sum := sha256.Sum256(data)
	for range 40 {
		sum = sha256.Sum256(sum[:])
	}
	return sum
}

func BenchmarkParallelRebuild(b *testing.B) {
	store, err := rebuildLog()
	require.NoError(b, err)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			const partitions = 8
			sums := make([]map[string][32]byte, partitions) // one map per partition: no lock needed
			for i := range sums {
				sums[i] = map[string][32]byte{}
			}
			g, err := projection.NewPartitioned(store, new(keyedCheckpoints), nil, projection.Projection[projection.NoTx]{
				Name: "sums", Partitions: partitions, Categories: []string{"acct"},
				Handle: func(ctx context.Context, _ projection.NoTx, batch projection.Batch) error {
					for _, ev := range batch.Events {
						m := sums[projection.PartitionOf(ev.Stream, partitions)]
						prev := m[ev.Stream]
						m[ev.Stream] = burn(append(prev[:], ev.Data...))
					}
					return nil
				},
				Reset: func(context.Context, projection.NoTx, int) error {
					for i := range sums {
						clear(sums[i])
					}
					return nil
				},
			}, projection.WithWorkers(workers), projection.WithLogger(slog.New(slog.DiscardHandler)))
			require.NoError(b, err)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				require.NoError(b, g.Rebuild(b.Context(), nil))
			}
			b.ReportMetric(float64(100_000*b.N)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(load1(), "load1")
		})
	}
}

// load1 returns the one-minute load average, 0 where /proc is missing.
func load1() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(data))[0], 64)
	return f
}
