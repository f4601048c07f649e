package aggregate_test

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es/memstore"
)

// Snapshots of the account of the package example, every 100 events, kept
// in the event store.
func ExampleWithSnapshots() {
	ctx := context.Background()
	types := accountTypes()
	store := memstore.MustNew()
	snapshots := aggregate.NewStreamSnapshots(store)
	accounts, err := aggregate.New(store, types, aggregate.Definition[Account, Event]{
		Category: "account",
		Evolve:   evolve,
	}, aggregate.WithSnapshots(snapshots, 100, "account/v1"))
	if err != nil {
		fmt.Println(err)
		return
	}

	_, _ = accounts.Create(ctx, "1", open("ada"))
	for range 150 {
		_, _ = accounts.Update(ctx, "1", deposit(1))
	}
	snap, _ := snapshots.LoadSnapshot(ctx, "account-1")
	fmt.Println("snapshot at revision", snap.Revision, "schema", snap.Schema)
	state, _, _ := accounts.Load(ctx, "1") // the snapshot, then 51 events
	fmt.Println(state.Balance)
	// Output:
	// snapshot at revision 99 schema account/v1
	// 150
}
