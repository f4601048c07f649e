package bus_test

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
)

// Donated is the event that this example's handler adds up.
type Donated struct {
	Amount int `json:"amount"`
}

// An event delivered twice (the relay published it again after a crash)
// is handled once: the handler's group ("totals") is the key of the events
// it processed.
func ExampleWithIdempotency() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	commands, _ := es.NewRegistry()
	events, _ := es.NewRegistry(es.Type[Donated]("Donated"))
	b, err := bus.New(commands, events)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	processed := new(bus.MemoryProcessed) // or sqlbus.NewProcessed: survives restarts
	total := 0
	_ = bus.HandleEvent(b, "totals", func(ctx context.Context, e Donated) error {
		total += e.Amount
		return nil
	}, bus.WithIdempotency(processed))
	go b.Run(ctx)

	donated := es.RecordedEvent{ID: uuid.New(), Stream: "fund-7", Type: "Donated", Data: []byte(`{"amount":100}`)}
	_ = b.Publish(ctx, donated)
	_ = b.Publish(ctx, donated) // in process: returns once handled
	fmt.Println("total:", total)
	// Output: total: 100
}
