package estest_test

import (
	"testing"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/memstore"
)

// testConformance is what a Store implementation's tests hold, named
// TestConformance in a file such as mystore_test.go (here it has another
// name, so that it is not a test of this package).
func testConformance(t *testing.T) {
	estest.Run(t, func(*testing.T) es.Store {
		return memstore.MustNew() // a fresh store for every subtest
	})
}

// A Store implementation runs the suite from its own tests, as
// testConformance above does. This example only compiles (it has no
// output to check).
func Example() {
	_ = testConformance
}
