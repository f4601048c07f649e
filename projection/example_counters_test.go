package projection_test

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// CounterAdded adds N to the counter of its stream, counter-<id>.
type CounterAdded struct {
	N int `json:"n"`
}

// An in-memory read model: the sum of CounterAdded per counter. Dispatch
// hands each event to the handler of its Go type.
func Example() {
	ctx := context.Background()
	store := memstore.MustNew()
	_, _ = store.Append(ctx, "counter-a", es.NoStream,
		es.EventData{Type: "Added", Data: []byte(`{"n":2}`)},
		es.EventData{Type: "Added", Data: []byte(`{"n":3}`)})
	_, _ = store.Append(ctx, "counter-b", es.NoStream, es.EventData{Type: "Added", Data: []byte(`{"n":7}`)})

	registry, err := es.NewRegistry(es.Type[CounterAdded]("Added"))
	if err != nil {
		fmt.Println(err)
		return
	}
	sums := map[string]int{}
	runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), registry, projection.Projection[projection.NoTx]{
		Name:       "sums",
		Categories: []string{"counter"},
		Handle: projection.Dispatch(
			projection.On(func(_ context.Context, _ projection.NoTx, ev projection.Typed[CounterAdded]) error {
				sums[ev.Stream] += ev.Payload.N
				return nil
			}),
		),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err = runner.CatchUp(ctx); err != nil { // or Run(ctx): history, then live
		fmt.Println(err)
		return
	}
	for _, counter := range slices.Sorted(maps.Keys(sums)) {
		fmt.Println(counter, sums[counter])
	}
	// Output:
	// counter-a 5
	// counter-b 7
}
