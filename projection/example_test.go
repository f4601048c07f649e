package projection_test

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// An in-memory read model: the sum of Added per counter. Dispatch hands
// each event to the handler of its Go type.
func Example() {
	ctx := context.Background()
	store := memstore.MustNew()
	_, _ = store.Append(ctx, "counter-a", es.NoStream,
		es.EventData{Type: "Added", Data: []byte(`{"n":2}`)},
		es.EventData{Type: "Added", Data: []byte(`{"n":3}`)})
	_, _ = store.Append(ctx, "counter-b", es.NoStream, es.EventData{Type: "Added", Data: []byte(`{"n":7}`)})

	types, _ := es.NewRegistry(es.Type[Added]("Added"))
	sums := map[string]int{}
	runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), types, projection.Projection[projection.NoTx]{
		Name:       "sums",
		Categories: []string{"counter"},
		Handle: projection.Dispatch(
			projection.On(func(ctx context.Context, _ projection.NoTx, ev projection.Typed[Added]) error {
				sums[ev.Stream] += ev.Payload.N
				return nil
			}),
		),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := runner.CatchUp(ctx); err != nil { // or Run(ctx): history, then live
		fmt.Println(err)
		return
	}
	streams := make([]string, 0, len(sums))
	for s := range sums {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	for _, s := range streams {
		fmt.Println(s, sums[s])
	}
	// Output:
	// counter-a 5
	// counter-b 7
}

// Each hands every event of a batch to one function, with its payload
// as decoded (any).
func ExampleEach() {
	ctx := context.Background()
	store := memstore.MustNew()
	_, _ = store.Append(ctx, "counter-a", es.NoStream,
		es.EventData{Type: "Added", Data: []byte(`{"n":2}`)},
		es.EventData{Type: "Added", Data: []byte(`{"n":3}`)})
	_, _ = store.Append(ctx, "counter-b", es.NoStream, es.EventData{Type: "Added", Data: []byte(`{"n":7}`)})

	types, _ := es.NewRegistry(es.Type[Added]("Added"))
	sums := map[string]int{}
	runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), types, projection.Projection[projection.NoTx]{
		Name:       "sums",
		Categories: []string{"counter"},
		Handle: projection.Each(func(ctx context.Context, _ projection.NoTx, version int, ev projection.Event) error {
			sums[ev.Stream] += ev.Payload.(Added).N
			return nil
		}),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := runner.CatchUp(ctx); err != nil { // or Run(ctx): history, then live
		fmt.Println(err)
		return
	}
	streams := make([]string, 0, len(sums))
	for s := range sums {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	for _, s := range streams {
		fmt.Println(s, sums[s])
	}
	// Output:
	// counter-a 5
	// counter-b 7
}

func ExampleRunner_WaitFor() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memstore.MustNew()
	types, _ := es.NewRegistry(es.Type[Added]("Added"))
	count := make(chan int, 10)
	n := 0
	runner, _ := projection.NewRunner(store, new(projection.MemoryCheckpoints), types, projection.Projection[projection.NoTx]{
		Name: "count",
		Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
			n += len(b.Events)
			count <- n
			return nil
		},
	})
	done := make(chan error)
	go func() { done <- runner.Run(ctx) }()

	res, _ := store.Append(ctx, "counter-a", es.Any, es.EventData{Type: "Added", Data: []byte(`{"n":1}`)})
	// Read your own write: wait until the projection has applied it.
	if err := runner.WaitFor(ctx, res.Position); err != nil {
		fmt.Println(err)
	}
	fmt.Println("applied:", <-count)
	cancel()
	fmt.Println("stopped:", <-done)
	// Output:
	// applied: 1
	// stopped: <nil>
}

func ExampleRunner_Rebuild() {
	ctx := context.Background()
	store := memstore.MustNew()
	_, _ = store.Append(ctx, "counter-a", es.NoStream, es.EventData{Type: "Added", Data: []byte(`{"n":2}`)})
	types, _ := es.NewRegistry(es.Type[Added]("Added"))
	total := 0
	runner, _ := projection.NewRunner(store, new(projection.MemoryCheckpoints), types, projection.Projection[projection.NoTx]{
		Name: "total",
		Handle: projection.Each(func(ctx context.Context, _ projection.NoTx, version int, ev projection.Event) error {
			total += ev.Payload.(Added).N
			return nil
		}),
		Reset: func(ctx context.Context, _ projection.NoTx, version int) error { total = 0; return nil },
	})
	_ = runner.CatchUp(ctx)
	total = 1000 // the read model is wrong: throw it away and rebuild it
	err := runner.Rebuild(ctx, func(p projection.Progress) {
		if p.Done {
			fmt.Println("rebuilt from", p.Events, "events")
		}
	})
	fmt.Println(total, err)
	// Output:
	// rebuilt from 1 events
	// 2 <nil>
}

// A runner that restarts after a failure, with backoff from 1s up to a
// minute, instead of returning it from Run: a service keeps its read
// models running through an outage of its database or event store, while
// Status tells what happens.
func ExampleWithRestart() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	store := memstore.MustNew()
	res, _ := store.Append(ctx, "counter-a", es.NoStream, es.EventData{Type: "Added", Data: []byte(`{"n":2}`)})

	runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
		Name:   "audit",
		Handle: func(context.Context, projection.NoTx, projection.Batch) error { return nil },
	}, projection.WithRestart(time.Second, time.Minute))
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }() // returns only when stopped, or for a poison event
	if err := runner.WaitFor(ctx, res.Position); err != nil {
		fmt.Println(err)
		return
	}
	st, _ := runner.Status(ctx)
	fmt.Println("restarts:", st.Restarts, "error:", st.Err)
	stop()
	fmt.Println("Run:", <-done)
	// Output:
	// restarts: 0 error: <nil>
	// Run: <nil>
}
