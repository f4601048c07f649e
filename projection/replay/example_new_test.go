package replay_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/replay"
)

// OrderPlaced is the event of this example: an order of an amount.
type OrderPlaced struct {
	Amount int `json:"amount"`
}

// orderSummaries returns a runner of a read model in memory: the amount of
// each order.
func orderSummaries(store es.Store, cps *projection.MemoryCheckpoints) *projection.Runner[projection.NoTx] {
	types, err := es.NewRegistry(es.Type[OrderPlaced]("OrderPlaced"))
	if err != nil {
		log.Fatal(err)
	}
	var (
		mu      sync.Mutex
		amounts = make(map[string]int)
	)
	runner, err := projection.NewRunner(store, cps, types, projection.Projection[projection.NoTx]{
		Name:       "order-summaries",
		Categories: []string{"order"},
		Handle: projection.Each(func(ctx context.Context, _ projection.NoTx, version int, ev projection.Event) error {
			mu.Lock()
			defer mu.Unlock()
			amounts[ev.Stream] = ev.Payload.(OrderPlaced).Amount
			return nil
		}),
		Reset: func(ctx context.Context, _ projection.NoTx, version int) error {
			mu.Lock()
			defer mu.Unlock()
			clear(amounts)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	return runner
}

// A main mounts the tool as one of its commands, here "orders replay".
func ExampleNew() {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	now := t0
	store := memstore.MustNew(memstore.WithClock(func() time.Time { return now }))
	for i, amount := range []int{30, 12, 7} {
		now = t0.Add(time.Duration(i) * time.Minute)
		data := fmt.Appendf(nil, `{"amount":%d}`, amount)
		if _, err := store.Append(ctx, fmt.Sprintf("order-%d", i+1), es.NoStream, es.EventData{Type: "OrderPlaced", Data: data}); err != nil {
			log.Fatal(err)
		}
	}
	tool := replay.New("orders replay", orderSummaries(store, new(projection.MemoryCheckpoints)))

	tool.Run(ctx, []string{"status"}, os.Stdout, os.Stderr)
	tool.Run(ctx, []string{"rebuild", "--bogus"}, os.Stdout, os.Stdout)
	// Output:
	// NAME             VERSION  STATE    CHECKPOINT  LAG (EVENTS)  LAG (TIME)  LAST EVENT
	// order-summaries  1        stopped  start       3             2m0s        -
	// orders replay rebuild: flag provided but not defined: -bogus
	//
	// usage: orders replay rebuild [flags] NAME... | --all
	//
	// Rebuild projections from the start of the log, in place or blue/green.
	//
	// Flags:
	//   -all
	//     	rebuild every projection
	//   -blue-green
	//     	build the next version beside the active one, which keeps serving, and switch to it once caught up (default: empty the read model and rebuild it in place)
	//   -drop-old
	//     	with --blue-green: drop the old version after the switch
	//   -progress auto
	//     	how to show progress: auto (a bar on a terminal, lines otherwise), bar, lines or none (default auto)
}
