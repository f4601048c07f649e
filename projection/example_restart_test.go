package projection_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

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
	if err = runner.WaitFor(ctx, res.Position); err != nil {
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
