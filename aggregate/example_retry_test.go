package aggregate_test

import (
	"fmt"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es/memstore"
)

// Up to 10 attempts when concurrent writers conflict, backing off from 5ms,
// for the accounts of the package example.
func ExampleWithRetry() {
	types := accountTypes()
	accounts, err := aggregate.New(memstore.MustNew(), types, aggregate.Definition[Account, Event]{
		Category: "account",
		Evolve:   evolve,
	}, aggregate.WithRetry(10, 5*time.Millisecond))
	fmt.Println(accounts != nil, err)
	// Output: true <nil>
}
