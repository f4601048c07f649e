package replay_test

import (
	"context"
	"fmt"
	"os"

	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/replay"
)

// Run runs one command of the tool on a main's runners, here "list", and
// returns the process's exit code.
func ExampleRun() {
	ctx := context.Background()
	runner, err := projection.NewRunner(memstore.MustNew(), new(projection.MemoryCheckpoints), nil, projection.Projection[projection.NoTx]{
		Name:   "order-summaries",
		Handle: func(context.Context, projection.NoTx, projection.Batch) error { return nil },
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	code := replay.Run(ctx, []string{"list"}, os.Stdout, os.Stderr, runner)
	fmt.Println("exit code", code)
	// Output:
	// order-summaries  v1
	// exit code 0
}
