package redisproj_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// BenchmarkRebuild rebuilds in place a read model of 20,000 events (two
// HINCRBYs each) with batches of 1,000: the events applied per second.
func BenchmarkRebuild(b *testing.B) {
	ctx := b.Context()
	client := newClient(b)
	cps := newCheckpoints(b, client, testPrefix(b, client))
	store := memstore.MustNew()
	const events = 20_000
	for i := 0; i < events; i += 100 {
		evs := make([]es.EventData, 100)
		for j := range evs {
			evs[j] = es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, j)}
		}
		_, err := store.Append(ctx, fmt.Sprintf("counter-%d", i/100), es.Any, evs...)
		if err != nil {
			b.Fatal(err)
		}
	}
	m := &totals{}
	r := newRunner(b, store, cps, m.projection("totals"), projection.WithBatch(1000, 10*time.Millisecond))
	if err := r.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := r.Rebuild(ctx, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}
