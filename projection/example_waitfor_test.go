package projection_test

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// A caller reads its own write: it appends, then waits until a running
// projection has applied the append's position.
func ExampleRunner_WaitFor() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memstore.MustNew()
	applied := make(chan int, 10)
	n := 0
	runner, _ := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
		Name: "count",
		Handle: func(_ context.Context, _ projection.NoTx, b projection.Batch) error {
			n += len(b.Events)
			applied <- n
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
	fmt.Println("applied:", <-applied)
	cancel()
	fmt.Println("stopped:", <-done)
	// Output:
	// applied: 1
	// stopped: <nil>
}
