package aggregate_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es/memstore"
)

// Create refuses an ID that is taken with ErrAlreadyExists. The account
// domain is the one of the package example.
func ExampleRepository_Create() {
	ctx := context.Background()
	accounts, _ := aggregate.New(memstore.MustNew(), accountTypes(), accountDef)
	_, _ = accounts.Create(ctx, "1", open("ada"))
	_, err := accounts.Create(ctx, "1", open("bob"))
	fmt.Println(errors.Is(err, aggregate.ErrAlreadyExists))
	// Output: true
}
