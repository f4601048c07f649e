package projection_test

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// UnitsSold records a sale of a product, in stream product-<id>.
type UnitsSold struct {
	Units int `json:"units"`
}

// Each hands every event of a batch to one function, with its payload as
// decoded (any): here, a running total of the units sold of every product.
func ExampleEach() {
	ctx := context.Background()
	store := memstore.MustNew()
	for _, sale := range []struct{ product, data string }{
		{"product-mug", `{"units":2}`}, {"product-lamp", `{"units":1}`}, {"product-mug", `{"units":4}`},
	} {
		if _, err := store.Append(ctx, sale.product, es.Any, es.EventData{Type: "UnitsSold", Data: []byte(sale.data)}); err != nil {
			fmt.Println(err)
			return
		}
	}

	registry, err := es.NewRegistry(es.Type[UnitsSold]("UnitsSold"))
	if err != nil {
		fmt.Println(err)
		return
	}
	sold := 0
	runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), registry, projection.Projection[projection.NoTx]{
		Name:       "units-sold",
		Categories: []string{"product"},
		Handle: projection.Each(func(_ context.Context, _ projection.NoTx, _ int, ev projection.Event) error {
			sold += ev.Payload.(UnitsSold).Units
			return nil
		}),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err = runner.CatchUp(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("units sold:", sold)
	// Output:
	// units sold: 7
}
