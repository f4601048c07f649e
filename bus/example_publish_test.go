package bus_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
)

// Publishing to a bus that stopped fails with ErrStopped; the relay's
// projection (projection.Relay) takes it for an error that blames no
// event: its runner retries, then restarts (projection.WithRestart), and
// its checkpoint stays before the events.
func ExampleBus_Publish() {
	commands, _ := es.NewRegistry()
	events, _ := es.NewRegistry()
	b, err := bus.New(commands, events)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = b.Close()
	err = b.Publish(context.Background(), es.RecordedEvent{ID: uuid.New(), Stream: "account-1", Type: "MoneyDeposited"})
	fmt.Println(errors.Is(err, bus.ErrStopped))
	// Output: true
}
