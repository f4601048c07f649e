package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

func ExampleNew() {
	ctx := context.Background()
	store := memstore.New()

	res, err := store.Append(ctx, "order-1", es.NoStream,
		es.EventData{Type: "OrderPlaced", Data: []byte(`{"amount":42}`)},
		es.EventData{Type: "OrderShipped", Data: []byte(`{}`)},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("revision", res.Revision)

	for ev, err := range store.ReadAll(ctx, es.ReadAllOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Position, ev.Stream, ev.Revision, ev.Type)
	}
	// Output:
	// revision 1
	// C:1/P:1 order-1 0 OrderPlaced
	// C:2/P:2 order-1 1 OrderShipped
}

// A clock of the test's own makes `$maxAge` testable without waiting.
func ExampleWithClock() {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	store := memstore.New(memstore.WithClock(func() time.Time { return now }))

	if _, err := store.Append(ctx, "session-1", es.NoStream, es.EventData{Type: "LoggedIn"}); err != nil {
		log.Fatal(err)
	}
	if _, err := es.SetStreamMetadata(ctx, store, "session-1", es.NoStream, es.StreamMetadata{MaxAge: time.Hour}); err != nil {
		log.Fatal(err)
	}
	count := func() int {
		n := 0
		for _, err := range store.ReadStream(ctx, "session-1", es.ReadStreamOptions{}) {
			if err != nil {
				log.Fatal(err)
			}
			n++
		}
		return n
	}
	fmt.Println("now:", count())
	now = now.Add(2 * time.Hour)
	fmt.Println("two hours later:", count())
	// Output:
	// now: 1
	// two hours later: 0
}

func ExampleWithMaxAppendSize() {
	store := memstore.New(memstore.WithMaxAppendSize(16))
	_, err := store.Append(context.Background(), "blob-1", es.NoStream,
		es.EventData{Type: "Uploaded", ContentType: es.ContentTypeBinary, Data: make([]byte, 17)})
	fmt.Println(errors.Is(err, es.ErrMaxAppendSizeExceeded))
	// Output:
	// true
}
