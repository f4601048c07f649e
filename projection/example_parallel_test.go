package projection_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// A partitioned projection rebuilt in place with 2 workers: the log is
// read once, each account's events are applied in order by the worker of
// its partition, and each partition commits its own checkpoint, so that
// an interrupted rebuild resumes where every partition stopped.
func ExamplePartitioned_Rebuild() {
	ctx := context.Background()
	store := memstore.MustNew()
	for i := range 100 {
		_, _ = store.Append(ctx, fmt.Sprintf("account-%d", i%10), es.Any, es.EventData{Type: "Deposited", Data: []byte(`{}`)})
	}
	var mu sync.Mutex
	deposits := map[string]int{}
	g, err := projection.NewPartitioned(store, new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
		Name:       "deposits",
		Categories: []string{"account"},
		Partitions: 4,
		Handle: func(_ context.Context, _ projection.NoTx, b projection.Batch) error {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range b.Events {
				deposits[ev.Stream]++
			}
			return nil
		},
		Reset: func(context.Context, projection.NoTx, int) error {
			mu.Lock()
			defer mu.Unlock()
			clear(deposits)
			return nil
		},
	}, projection.WithWorkers(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	var last projection.Progress
	if err := g.Rebuild(ctx, func(p projection.Progress) { last = p }); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("events applied:", last.Events, "done:", last.Done)
	fmt.Println("account-7:", deposits["account-7"])
	// Output:
	// events applied: 100 done: true
	// account-7: 10
}
