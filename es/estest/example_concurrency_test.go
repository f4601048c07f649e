package estest_test

import (
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/memstore"
)

// testSharedConformance is the TestConformance of a slow or remote store:
// one store for all subtests, smaller concurrency tests, and longer waits
// for subscriptions.
func testSharedConformance(t *testing.T) {
	store := memstore.MustNew() // say, a client of a shared server
	estest.Run(t, func(*testing.T) es.Store { return store },
		estest.WithConcurrency(4, 20),
		estest.WithTimeout(30*time.Second),
	)
}

// A slow or remote store can share one store across subtests, run smaller
// concurrency tests and wait longer for subscriptions, as
// testSharedConformance above does. This example only compiles.
func ExampleWithConcurrency() {
	_ = testSharedConformance
}
