package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	res, err := store.Append(ctx, "order-1", es.NoStream,
		es.EventData{Type: "OrderPlaced", Data: []byte(`{"total":42}`)},
		es.EventData{Type: "OrderPaid", Data: []byte(`{"amount":42}`)},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended up to revision", res.Revision, "at", res.Position)

	for ev, err := range store.ReadStream(ctx, "order-1", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Revision, ev.Type, string(ev.Data))
	}

	_, err = store.Append(ctx, "order-1", es.NoStream, es.EventData{Type: "OrderPlaced"})
	fmt.Println(errors.Is(err, es.ErrWrongExpectedVersion))
	// Output:
	// appended up to revision 1 at C:2/P:2
	// 0 OrderPlaced {"total":42}
	// 1 OrderPaid {"amount":42}
	// true
}

func ExampleStore_SubscribeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "sqlstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	if _, err := store.Append(ctx, "order-1", es.NoStream, es.EventData{Type: "OrderPlaced"}); err != nil {
		log.Fatal(err)
	}
	for msg, err := range store.SubscribeAll(ctx, es.SubscribeAllOptions{From: es.Start, Filter: es.ExcludeSystemEvents()}) {
		if err != nil {
			log.Fatal(err)
		}
		switch msg.Kind {
		case es.KindEvent:
			fmt.Println("event", msg.Event.Stream, msg.Event.Type, "at", msg.Position)
			if msg.Event.Type == "OrderShipped" {
				return
			}
		case es.KindCheckpoint:
			fmt.Println("checkpoint at", msg.Position)
		case es.KindCaughtUp:
			fmt.Println("caught up")
			// Live: this append wakes the subscription at once.
			if _, err := store.Append(ctx, "order-1", es.Exact(0), es.EventData{Type: "OrderShipped"}); err != nil {
				log.Fatal(err)
			}
		}
	}
	// Output:
	// event order-1 OrderPlaced at C:1/P:1
	// checkpoint at C:1/P:1
	// caught up
	// event order-1 OrderShipped at C:2/P:2
}

// WithCallTimeout bounds each call into the database when the caller's
// context has no earlier deadline. A call that it ends fails, like one that
// cannot reach the database, with an error wrapping es.ErrUnavailable: the
// same check works for every store.
func ExampleWithCallTimeout() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlstore.WithCallTimeout(2*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	res, err := store.Append(ctx, "order-7", es.NoStream, es.EventData{Type: "OrderPlaced"})
	if errors.Is(err, es.ErrUnavailable) {
		// The database is away or did not answer in time: retry later
		// with the same event IDs, or answer 503.
		log.Fatal(err)
	}
	fmt.Println(res.Revision, err)
	// Output:
	// 0 <nil>
}
