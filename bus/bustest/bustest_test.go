package bustest_test

import (
	"testing"

	"github.com/eventfold/eventfold/bus/bustest"
)

// TestGoChannel runs the suite as ExampleRun shows.
func TestGoChannel(t *testing.T) {
	bustest.Run(t, newGoChannel, bustest.Features{GuaranteedOrder: true, ConcurrentHandling: true})
}
