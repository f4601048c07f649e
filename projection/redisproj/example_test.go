package redisproj_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/redisproj"
)

// OrderPlaced is an event of the examples.
type OrderPlaced struct {
	Customer string `json:"customer"`
	Total    int    `json:"total"`
}

// placeOrder records an order in the details of the version being built:
// a hash per order, written in the transaction of the batch's checkpoint.
func placeOrder(ctx context.Context, tx redisproj.Tx, ev projection.Typed[OrderPlaced]) error {
	return tx.Pipe.HSet(ctx, tx.Key(ev.Version, "order", ev.Stream),
		"customer", ev.Payload.Customer, "total", ev.Payload.Total).Err()
}

// setUp returns the examples' checkpoints, on client, and their registry.
func setUp(ctx context.Context, client *redis.Client) (*redisproj.Checkpoints, *es.Registry, error) {
	cps, err := redisproj.New(ctx, client, redisproj.WithPrefix("shop:"))
	if err != nil {
		return nil, nil, err
	}
	registry, err := es.NewRegistry(es.Type[OrderPlaced]("OrderPlaced"))
	return cps, registry, err
}

// A read model of order details in Redis, built from the log and read
// by queries under the active version's prefix. It needs a Redis server
// on 127.0.0.1:6379, so it has no output to check.
func Example() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	cps, registry, err := setUp(ctx, client)
	if err != nil {
		fmt.Println(err)
		return
	}
	store := memstore.MustNew()
	ev, _ := registry.Encode(ctx, OrderPlaced{Customer: "ada", Total: 42})
	if _, err := store.Append(ctx, "order-1", es.NoStream, ev); err != nil {
		fmt.Println(err)
		return
	}

	runner, err := projection.NewRunner(store, cps, registry, projection.Projection[redisproj.Tx]{
		Name:       "order-details",
		Categories: []string{"order"},
		Handle:     projection.Dispatch(projection.On(placeOrder)),
		Reset:      redisproj.DeleteVersion,
		Drop:       redisproj.DeleteVersion,
	}, projection.WithBatch(500, 10*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := runner.CatchUp(ctx); err != nil { // or runner.Run(ctx), live
		fmt.Println(err)
		return
	}

	// The query side reads the active version.
	prefix, _, err := cps.ActivePrefix(ctx, "order-details")
	if err != nil {
		fmt.Println(err)
		return
	}
	order, err := client.HGetAll(ctx, prefix+"order:order-1").Result()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(order["customer"], order["total"])
}

// A blue/green rebuild builds version 2 of the read model under its own
// prefix while queries read version 1, then switches the active version
// atomically; version 1's keys are deleted once nothing reads them. It
// needs a Redis server, so it has no output to check.
func ExampleDeleteVersion() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer client.Close()
	cps, registry, err := setUp(ctx, client)
	if err != nil {
		fmt.Println(err)
		return
	}
	runner, err := projection.NewRunner(memstore.MustNew(), cps, registry, projection.Projection[redisproj.Tx]{
		Name:   "order-details",
		Handle: projection.Dispatch(projection.On(placeOrder)),
		Reset:  redisproj.DeleteVersion, // a rebuild in place: runner.Rebuild
		Drop:   redisproj.DeleteVersion, // an old version: runner.DropVersion
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	from, to, err := runner.RebuildBlueGreen(ctx, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := runner.DropVersion(ctx, from); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("queries read", cps.Prefix("order-details", to))
}
