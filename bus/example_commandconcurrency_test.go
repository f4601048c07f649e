package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
)

// Reserve is the command of this example.
type Reserve struct {
	Seat int `json:"seat"`
}

// Four requests from four goroutines are handled at once: the handler
// returns only when all four are inside it.
func ExampleWithCommandConcurrency() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	commands, _ := es.NewRegistry(es.Type[Reserve]("Reserve"))
	events, _ := es.NewRegistry()
	b, err := bus.New(commands, events, bus.WithCommandConcurrency(4))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	var inside sync.WaitGroup
	inside.Add(4)
	_ = bus.HandleCommand(b, func(ctx context.Context, cmd Reserve) error {
		inside.Done()
		inside.Wait() // until all four are inside
		return nil
	})
	go b.Run(ctx)

	var requests sync.WaitGroup
	errs := make([]error, 4)
	for i := range 4 {
		requests.Go(func() { _, errs[i] = bus.Request[struct{}](ctx, b, Reserve{Seat: i}) })
	}
	requests.Wait()
	fmt.Println("4 reservations handled at once:", errors.Join(errs...))
	// Output:
	// 4 reservations handled at once: <nil>
}
