package aggregate_test

import (
	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
)

// The fixtures of the bank account of example_account_test.go, which the
// tests and the examples other than Example share.

// accountDef is the definition of accounts.
var accountDef = aggregate.Definition[Account, Event]{Category: "account", Evolve: evolve}

// accountTypes returns the registry of the account events.
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
