package aggregate_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

// seed appends n deposits to stream "account-1" in batches, after its
// opening event.
func seed(b *testing.B, store es.Store, n int) {
	b.Helper()
	ctx := b.Context()
	if _, err := store.Append(ctx, "account-1", es.NoStream, es.EventData{Type: "AccountOpened", Data: []byte(`{"owner":"ada"}`)}); err != nil {
		b.Fatal(err)
	}
	batch := make([]es.EventData, 0, 1000)
	for i := range n {
		batch = append(batch, es.EventData{Type: "MoneyDeposited", Data: fmt.Appendf(nil, `{"amount":%d}`, i%100)})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := store.Append(ctx, "account-1", es.Any, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkRehydrate compares loading a 10,000-event aggregate through the
// repository with a hand-written loop that reads the same stream, decodes
// each event with a type switch and applies it: the repository's overhead is
// the difference.
func BenchmarkRehydrate(b *testing.B) {
	const n = 10_000
	store := memstore.MustNew()
	seed(b, store, n)

	b.Run("baseline", func(b *testing.B) {
		ctx := b.Context()
		b.ReportAllocs()
		for b.Loop() {
			var state Account
			for rec, err := range store.ReadStream(ctx, "account-1", es.ReadStreamOptions{}) {
				if err != nil {
					b.Fatal(err)
				}
				var e Event
				switch rec.Type {
				case "AccountOpened":
					var v Opened
					err = json.Unmarshal(rec.Data, &v)
					e = v
				case "MoneyDeposited":
					var v Deposited
					err = json.Unmarshal(rec.Data, &v)
					e = v
				case "MoneyWithdrawn":
					var v Withdrawn
					err = json.Unmarshal(rec.Data, &v)
					e = v
				}
				if err != nil {
					b.Fatal(err)
				}
				state = evolve(state, e)
			}
			if state.Events != n+1 {
				b.Fatalf("folded %d events", state.Events)
			}
		}
		b.ReportMetric(float64(n+1)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	// The repository with its telemetry on the global (no-op) providers,
	// as in an application without an OpenTelemetry SDK, and with its
	// telemetry switched off: the difference is what the no-op costs.
	for _, c := range []struct {
		name string
		opts []aggregate.Option
	}{{"repository", nil}, {"repository-telemetry-off", []aggregate.Option{aggregate.WithoutTelemetry()}}} {
		b.Run(c.name, func(b *testing.B) {
			rehydrate(b, store, n, c.opts...)
		})
	}
}

// rehydrate loads the aggregate of n+1 events b.N times.
func rehydrate(b *testing.B, store es.Store, n int, opts ...aggregate.Option) {
	{
		ctx := b.Context()
		repo, err := aggregate.New(store, accountTypes(), accountDef, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			state, _, err := repo.Load(ctx, "1")
			if err != nil {
				b.Fatal(err)
			}
			if state.Events != n+1 {
				b.Fatalf("folded %d events", state.Events)
			}
		}
		b.ReportMetric(float64(n+1)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
}

// BenchmarkLoadAfterSnapshot loads an aggregate of 1,000,000 events whose
// latest snapshot is 5 events old, from a snapshot in memory and from one
// kept in the event store, and, as the baseline, without a snapshot.
func BenchmarkLoadAfterSnapshot(b *testing.B) {
	const n = 1_000_000
	store := memstore.MustNew()
	seed(b, store, n)
	for _, bc := range []struct {
		name  string
		snaps aggregate.SnapshotStore
	}{
		{"memory", new(aggregate.MemorySnapshots)},
		{"stream", aggregate.NewStreamSnapshots(store)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := b.Context()
			// Take a snapshot at the end of the stream (this update replays
			// the whole stream), then append 5 events after it.
			snapshotter, err := aggregate.New(store, accountTypes(), accountDef, aggregate.WithSnapshots(bc.snaps, 1, "v1"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := snapshotter.Update(ctx, "1", deposit(1)); err != nil {
				b.Fatal(err)
			}
			seedMore(b, store, 5)
			repo, err := aggregate.New(store, accountTypes(), accountDef, aggregate.WithSnapshots(bc.snaps, 1_000_000, "v1"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := repo.Load(ctx, "1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The baseline: the same aggregate replayed from its first event.
	b.Run("none", func(b *testing.B) {
		repo, err := aggregate.New(store, accountTypes(), accountDef)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := repo.Load(b.Context(), "1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func seedMore(b *testing.B, store es.Store, n int) {
	b.Helper()
	for range n {
		if _, err := store.Append(b.Context(), "account-1", es.Any, es.EventData{Type: "MoneyDeposited", Data: []byte(`{"amount":1}`)}); err != nil {
			b.Fatal(err)
		}
	}
}
