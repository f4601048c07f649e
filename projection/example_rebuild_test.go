package projection_test

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// PointsScored adds points to the score of a player.
type PointsScored struct {
	Points int `json:"points"`
}

// A read model that went wrong is thrown away and rebuilt from the log:
// Reset empties it, then the runner replays every event.
func ExampleRunner_Rebuild() {
	ctx := context.Background()
	store := memstore.MustNew()
	_, _ = store.Append(ctx, "player-ada", es.NoStream, es.EventData{Type: "PointsScored", Data: []byte(`{"points":2}`)})
	registry, _ := es.NewRegistry(es.Type[PointsScored]("PointsScored"))
	score := 0
	runner, _ := projection.NewRunner(store, new(projection.MemoryCheckpoints), registry, projection.Projection[projection.NoTx]{
		Name: "score",
		Handle: projection.Each(func(_ context.Context, _ projection.NoTx, _ int, ev projection.Event) error {
			score += ev.Payload.(PointsScored).Points
			return nil
		}),
		Reset: func(context.Context, projection.NoTx, int) error { score = 0; return nil },
	})
	_ = runner.CatchUp(ctx)
	score = 1000 // the read model is wrong: throw it away and rebuild it
	err := runner.Rebuild(ctx, func(p projection.Progress) {
		if p.Done {
			fmt.Println("rebuilt from", p.Events, "events")
		}
	})
	fmt.Println(score, err)
	// Output:
	// rebuilt from 1 events
	// 2 <nil>
}
