package bus_test

import (
	"errors"
	"fmt"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
)

// Two deployments that share a broker keep their topics apart with a
// namespace each: here the ID a deployment keeps in its event store.
func ExampleWithNamespace() {
	commands, _ := es.NewRegistry()
	events, _ := es.NewRegistry()
	b, err := bus.New(commands, events, bus.WithNamespace("d3f9a2c41b07"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	fmt.Println(b.TopicPrefix())

	_, err = bus.New(commands, events, bus.WithNamespace("orders.eu"))
	fmt.Println(errors.Is(err, bus.ErrInvalidOption))
	// Output:
	// eventfold-d3f9a2c41b07-
	// true
}
