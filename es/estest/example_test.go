package estest_test

import (
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/memstore"
)

// A Store implementation runs the suite from its own tests. This example only
// compiles (it has no output to check): the function below is what a file
// such as mystore_test.go holds, with a TestConformance name.
func Example() {
	testConformance := func(t *testing.T) {
		estest.Run(t, func(t *testing.T) es.Store {
			return memstore.MustNew() // a fresh store for every subtest
		})
	}
	_ = testConformance
}

// A slow or remote store can share one store across subtests, run smaller
// concurrency tests and wait longer for subscriptions. This example only
// compiles.
func ExampleWithConcurrency() {
	testConformance := func(t *testing.T) {
		store := memstore.MustNew() // say, a client of a shared server
		estest.Run(t, func(*testing.T) es.Store { return store },
			estest.WithConcurrency(4, 20),
			estest.WithTimeout(30*time.Second),
		)
	}
	_ = testConformance
}
