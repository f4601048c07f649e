package projection_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// A projection split into 4 partitions: each account's events go to one
// partition, in order, and the partitions apply their events in parallel.
// Two replicas share the partitions through their common checkpoint
// store; here they are two groups in one process, as a test would have
// them.
func ExampleNewPartitioned() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memstore.MustNew()
	cps := new(projection.MemoryCheckpoints) // in a service: sqlproj on the shared database

	var mu sync.Mutex
	balances := map[string]int{} // the read model
	p := projection.Projection[projection.NoTx]{
		Name:       "balances",
		Categories: []string{"account"},
		Partitions: 4, // by stream, unless PartitionKey says otherwise
		Handle: func(_ context.Context, _ projection.NoTx, b projection.Batch) error {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range b.Events {
				balances[ev.Stream]++
			}
			return nil
		},
	}
	var replicas []*projection.Partitioned[projection.NoTx]
	var wg sync.WaitGroup
	for range 2 {
		g, err := projection.NewPartitioned(store, cps, nil, p)
		if err != nil {
			fmt.Println(err)
			return
		}
		replicas = append(replicas, g)
		wg.Go(func() { _ = g.Run(ctx) })
	}

	var last es.AppendResult
	for i := range 8 {
		last, _ = store.Append(ctx, fmt.Sprintf("account-%d", i%4), es.Any, es.EventData{Type: "Deposited", Data: []byte(`{}`)})
	}
	// Read your own write, whichever replica runs the partition.
	if err := replicas[0].WaitFor(ctx, last.Position); err != nil {
		fmt.Println(err)
	}
	fmt.Println("account-3 is on partition", projection.PartitionOf("account-3", 4))
	mu.Lock()
	fmt.Println("account-3:", balances["account-3"])
	mu.Unlock()
	cancel()
	wg.Wait()
	// Output:
	// account-3 is on partition 0
	// account-3: 2
}
