package sqlstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

func ExampleStore_Scavenge() {
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

	// A checkpoint stream keeps its newest event: reads hide the older ones,
	// but they stay in the table until a scavenge deletes them.
	_, err = es.SetStreamMetadata(ctx, store, "checkpoint-relay", es.NoStream, es.StreamMetadata{MaxCount: 1})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 5 {
		_, err := store.Append(ctx, "checkpoint-relay", es.Any,
			es.EventData{Type: "Checkpoint", Data: fmt.Appendf(nil, `{"n":%d}`, i)})
		if err != nil {
			log.Fatal(err)
		}
	}

	// The consumers of $all have all processed position 4: events below it
	// may go. (es.End would let everything up to the head of the log go.)
	res, err := store.Scavenge(ctx, es.Position{Commit: 4, Prepare: 4})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deleted", res.Deleted, "below", res.Horizon)
	res, err = store.Scavenge(ctx, es.End)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deleted", res.Deleted, "below", res.Horizon)

	for ev, err := range store.ReadAll(ctx, es.ReadAllOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Position, ev.Stream, ev.Revision, string(ev.Data))
	}
	// Output:
	// deleted 2 below C:4/P:4
	// deleted 2 below C:6/P:6
	// C:1/P:1 $$checkpoint-relay 0 {"$maxCount":1}
	// C:6/P:6 checkpoint-relay 4 {"n":4}
}

func ExampleWithScavenge() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// horizon returns the lowest checkpoint of the consumers of $all; here
	// there are none.
	horizon := func(ctx context.Context) (es.Position, error) { return es.End, nil }
	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"),
		sqlstore.WithScavenge(10*time.Millisecond, horizon))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // stops the scavenger

	_, err = es.SetStreamMetadata(ctx, store, "checkpoint-relay", es.NoStream, es.StreamMetadata{MaxCount: 1})
	if err != nil {
		log.Fatal(err)
	}
	for range 5 {
		if _, err := store.Append(ctx, "checkpoint-relay", es.Any, es.EventData{Type: "Checkpoint"}); err != nil {
			log.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n := 0
		for _, err := range store.ReadAll(ctx, es.ReadAllOptions{}) {
			if err != nil {
				log.Fatal(err)
			}
			n++
		}
		if n == 2 {
			fmt.Println("the metadata and the newest checkpoint are left")
			return
		}
	}
	fmt.Println("the scavenger did not run")
	// Output:
	// the metadata and the newest checkpoint are left
}
