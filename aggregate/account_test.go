package aggregate_test

import (
	"errors"
	"fmt"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
)

// A small bank account, the test domain of this package.

type Event interface{ isAccountEvent() }

type Opened struct {
	Owner string `json:"owner"`
}

type Deposited struct {
	Amount int `json:"amount"`
}

type Withdrawn struct {
	Amount int `json:"amount"`
}

func (Opened) isAccountEvent()    {}
func (Deposited) isAccountEvent() {}
func (Withdrawn) isAccountEvent() {}

type Account struct {
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
	Events  int    `json:"events"`
}

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

var accountDef = aggregate.Definition[Account, Event]{Category: "account", Evolve: evolve}

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

func accountTypes() *es.Registry {
	types, err := es.NewRegistry(
		es.Type[Opened]("AccountOpened"),
		es.Type[Deposited]("MoneyDeposited"),
		es.Type[Withdrawn]("MoneyWithdrawn"),
	)
	if err != nil {
		panic(err) // a test fixture: the registrations above are constant
	}
	return types
}
