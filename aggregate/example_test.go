package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

func Example() {
	ctx := context.Background()
	types, _ := es.NewRegistry(
		es.Type[Opened]("AccountOpened"),
		es.Type[Deposited]("MoneyDeposited"),
		es.Type[Withdrawn]("MoneyWithdrawn"),
	)
	accounts, err := aggregate.New(memstore.MustNew(), types, aggregate.Definition[Account, Event]{
		Category: "account",
		Evolve:   evolve,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	if _, err := accounts.Create(ctx, "7", open("ada")); err != nil {
		fmt.Println(err)
		return
	}
	res, err := accounts.Update(ctx, "7", deposit(100))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s has %d after version %d\n", res.State.Owner, res.State.Balance, res.Version)

	_, err = accounts.Update(ctx, "7", withdraw(500))
	fmt.Println(errors.Is(err, ErrInsufficientFunds), err)
	// Output:
	// ada has 100 after version 1
	// true account: insufficient funds: balance 100, withdrawing 500
}

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

func ExampleRepository_Create() {
	ctx := context.Background()
	accounts, _ := aggregate.New(memstore.MustNew(), accountTypes(), accountDef)
	_, _ = accounts.Create(ctx, "1", open("ada"))
	_, err := accounts.Create(ctx, "1", open("bob"))
	fmt.Println(errors.Is(err, aggregate.ErrAlreadyExists))
	// Output: true
}

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

func ExampleDefinition_Fold() {
	fmt.Printf("%+v\n", accountDef.Fold(Opened{Owner: "ada"}, Deposited{Amount: 5}, Withdrawn{Amount: 2}))
	// Output: {Owner:ada Balance:3 Events:3}
}

func ExampleWithRetry() {
	types := accountTypes()
	// Up to 10 attempts when concurrent writers conflict, backing off from 5ms.
	accounts, err := aggregate.New(memstore.MustNew(), types, aggregate.Definition[Account, Event]{
		Category: "account",
		Evolve:   evolve,
	}, aggregate.WithRetry(10, 5*time.Millisecond))
	fmt.Println(accounts != nil, err)
	// Output: true <nil>
}
