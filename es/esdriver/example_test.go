package esdriver_test

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// eventIDs is a store's record of the IDs of one stream's events, by
// revision: what DecideAppend asks of a store (esdriver.Events) to
// recognise an append made twice.
type eventIDs []uuid.UUID

// Find returns the revision of the event with id.
func (s eventIDs) Find(id uuid.UUID) (uint64, bool, error) {
	for i, x := range s {
		if x == id {
			return uint64(i), true, nil
		}
	}
	return 0, false, nil
}

// Holds reports whether the events from revision from on have the IDs of evs.
func (s eventIDs) Holds(from uint64, evs []es.EventData) (bool, error) {
	for i, ev := range evs {
		if s[from+uint64(i)] != ev.ID {
			return false, nil
		}
	}
	return true, nil
}

// A store decides every append with DecideAppend, against the state of the
// stream it read; it writes only what the decision says. Here the stream
// holds two events, and a client retries the append of its second one after
// a lost answer: the store answers with the first append's revision
// instead of writing the event twice.
func ExampleDecideAppend() {
	first, second := uuid.New(), uuid.New()
	stream := eventIDs{first, second}
	st := esdriver.Stream{Last: 1}

	retry, err := esdriver.PrepareAppend("order-1", []es.EventData{{ID: second, Type: "OrderConfirmed"}}, 0)
	if err != nil {
		panic(err)
	}
	d, err := esdriver.DecideAppend("order-1", st, es.Exact(0), retry, stream)
	fmt.Printf("write: %v, answered with revision %d, err: %v\n", d.Write, d.Revision, err)

	_, err = esdriver.DecideAppend("order-1", st, es.Exact(0), []es.EventData{{ID: uuid.New(), Type: "OrderShipped"}}, stream)
	fmt.Println(err)
	// Output:
	// write: false, answered with revision 1, err: <nil>
	// es: wrong expected version for stream "order-1": expected 0, actual 1
}
