package aggregate_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

// A small bank account: the domain of this example, which the package's
// other examples and its tests use too.

// Event is an event of an account.
type Event interface{ isAccountEvent() }

// Opened starts an account.
type Opened struct {
	Owner string `json:"owner"`
}

// Deposited adds money to an account.
type Deposited struct {
	Amount int `json:"amount"`
}

// Withdrawn takes money from an account.
type Withdrawn struct {
	Amount int `json:"amount"`
}

func (Opened) isAccountEvent()    {}
func (Deposited) isAccountEvent() {}
func (Withdrawn) isAccountEvent() {}

// Account is the state of an account, folded from its events.
type Account struct {
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
	Events  int    `json:"events"`
}

// ErrInsufficientFunds is the domain error of a withdrawal above the balance.
var ErrInsufficientFunds = errors.New("account: insufficient funds")

func evolve(a Account, e Event) Account {
	switch e := e.(type) {
	case Opened:
		a.Owner = e.Owner
	case Deposited:
		a.Balance += e.Amount
	case Withdrawn:
		a.Balance -= e.Amount
	}
	a.Events++
	return a
}

func open(owner string) aggregate.Decider[Account, Event] {
	return func(Account) ([]Event, error) { return []Event{Opened{Owner: owner}}, nil }
}

func deposit(amount int) aggregate.Decider[Account, Event] {
	return func(Account) ([]Event, error) { return []Event{Deposited{Amount: amount}}, nil }
}

func withdraw(amount int) aggregate.Decider[Account, Event] {
	return func(a Account) ([]Event, error) {
		if a.Balance < amount {
			return nil, fmt.Errorf("%w: balance %d, withdrawing %d", ErrInsufficientFunds, a.Balance, amount)
		}
		return []Event{Withdrawn{Amount: amount}}, nil
	}
}

// An account in a repository: the events have names in the store, the
// definition folds them, and deciders make new ones or refuse.
func Example() {
	ctx := context.Background()
	types, err := es.NewRegistry(
		es.Type[Opened]("AccountOpened"),
		es.Type[Deposited]("MoneyDeposited"),
		es.Type[Withdrawn]("MoneyWithdrawn"),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	accounts, err := aggregate.New(memstore.MustNew(), types, aggregate.Definition[Account, Event]{
		Category: "account",
		Evolve:   evolve,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	if _, err = accounts.Create(ctx, "7", open("ada")); err != nil {
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
