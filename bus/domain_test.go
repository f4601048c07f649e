package bus_test

import (
	"errors"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
)

// A tiny domain: accounts, with commands, events and a domain error.

type OpenAccount struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
}

type Deposit struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

type Withdraw struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

// Review is the command the large-deposits process manager sends.
type Review struct {
	ID string `json:"id"`
}

// Unhandled is a registered command type that no test handles.
type Unhandled struct{}

type Event interface{ isEvent() }

type Opened struct {
	Owner string `json:"owner"`
}
type Deposited struct {
	Amount int `json:"amount"`
}
type Withdrawn struct {
	Amount int `json:"amount"`
}
type Reviewed struct{}

func (Opened) isEvent()    {}
func (Deposited) isEvent() {}
func (Withdrawn) isEvent() {}
func (Reviewed) isEvent()  {}

type Account struct {
	Owner    string
	Balance  int
	Reviewed int
}

var ErrInsufficientFunds = errors.New("account: insufficient funds")

func commandTypes() *es.Registry {
	r, err := es.NewRegistry(
		es.Type[OpenAccount]("OpenAccount"),
		es.Type[Deposit]("Deposit"),
		es.Type[Withdraw]("Withdraw"),
		es.Type[Review]("Review"),
		es.Type[Unhandled]("Unhandled"),
	)
	if err != nil {
		panic(err)
	}
	return r
}

func eventTypes() *es.Registry {
	r, err := es.NewRegistry(
		es.Type[Opened]("AccountOpened"),
		es.Type[Deposited]("MoneyDeposited"),
		es.Type[Withdrawn]("MoneyWithdrawn"),
		es.Type[Reviewed]("DepositReviewed"),
	)
	if err != nil {
		panic(err)
	}
	return r
}

var accounts = aggregate.Definition[Account, Event]{
	Category: "account",
	Evolve: func(s Account, e Event) Account {
		switch e := e.(type) {
		case Opened:
			s.Owner = e.Owner
		case Deposited:
			s.Balance += e.Amount
		case Withdrawn:
			s.Balance -= e.Amount
		case Reviewed:
			s.Reviewed++
		}
		return s
	},
}

// Balance is the result of the account commands' requests.
type Balance struct {
	Balance int `json:"balance"`
}

func open(cmd OpenAccount) aggregate.Decider[Account, Event] {
	return func(Account) ([]Event, error) { return []Event{Opened{Owner: cmd.Owner}}, nil }
}
