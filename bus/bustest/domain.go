package bustest

import (
	"errors"
	"fmt"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
)

// The suite's domain: accounts, with commands, events, a request's result
// and a domain error.

type openAccount struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
}

type deposit struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

type withdraw struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

// review is the command the large-deposits process manager sends.
type review struct {
	ID string `json:"id"`
}

// unhandled is a registered command type that no test handles.
type unhandled struct{}

// balance is the result of the account commands' requests.
type balance struct {
	Balance int `json:"balance"`
}

type event interface{ isEvent() }

type opened struct {
	Owner string `json:"owner"`
}
type deposited struct {
	Amount int `json:"amount"`
}
type reviewed struct{}

func (opened) isEvent()    {}
func (deposited) isEvent() {}
func (reviewed) isEvent()  {}

type account struct {
	owner    string
	balance  int
	reviewed int
}

var errInsufficientFunds = errors.New("bustest: insufficient funds")

func commandTypes() *es.Registry {
	r, err := es.NewRegistry(
		es.Type[openAccount]("OpenAccount"),
		es.Type[deposit]("Deposit"),
		es.Type[withdraw]("Withdraw"),
		es.Type[review]("Review"),
		es.Type[unhandled]("Unhandled"),
	)
	if err != nil {
		panic(err) // the suite's own registry: a bug of the suite
	}
	return r
}

func eventTypes() *es.Registry {
	r, err := es.NewRegistry(
		es.Type[opened]("AccountOpened"),
		es.Type[deposited]("MoneyDeposited"),
		es.Type[reviewed]("DepositReviewed"),
	)
	if err != nil {
		panic(err) // the suite's own registry: a bug of the suite
	}
	return r
}

var accounts = aggregate.Definition[account, event]{
	Category: "account",
	Evolve: func(s account, e event) account {
		switch e := e.(type) {
		case opened:
			s.owner = e.Owner
		case deposited:
			s.balance += e.Amount
		case reviewed:
			s.reviewed++
		}
		return s
	},
}

// insufficientFunds is the domain error of a withdrawal of amount from an
// empty account.
func insufficientFunds(amount int) error {
	return fmt.Errorf("%w: balance 0, withdrawing %d", errInsufficientFunds, amount)
}
