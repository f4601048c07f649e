package aggregate_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es/memstore"
)

// Load folds the events of an aggregate into its state, and reports
// ErrNotFound for one without events. The account domain is the one of the
// package example.
func ExampleRepository_Load() {
	ctx := context.Background()
	accounts, _ := aggregate.New(memstore.MustNew(), accountTypes(), accountDef)
	_, _, err := accounts.Load(ctx, "404")
	fmt.Println(errors.Is(err, aggregate.ErrNotFound))

	_, _ = accounts.Create(ctx, "1", open("ada"))
	state, version, _ := accounts.Load(ctx, "1")
	fmt.Println(state.Owner, version)
	// Output:
	// true
	// ada 0
}
