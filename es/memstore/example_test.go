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
	store, err := memstore.New()
	if err != nil {
		log.Fatal(err)
	}

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

// MustNew suits tests and examples: without options, or with options known
// to be valid, it cannot panic. An invalid option is a clear panic at
// construction, not a failure at the first append.
func ExampleMustNew() {
	store := memstore.MustNew(memstore.WithMaxAppendSize(1 << 10))
	_, err := store.Append(context.Background(), "s", es.NoStream, es.EventData{Type: "A"})
	fmt.Println(err)

	_, err = memstore.New(memstore.WithClock(nil), memstore.WithMaxAppendSize(0))
	fmt.Println(errors.Is(err, memstore.ErrInvalidOption))
	fmt.Println(err)
	// Output:
	// <nil>
	// true
	// memstore: invalid option: nil clock
	// memstore: invalid option: max append size 0 < 1
}

// A clock of the test's own makes `$maxAge` testable without waiting.
func ExampleWithClock() {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	store := memstore.MustNew(memstore.WithClock(func() time.Time { return now }))

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
	store := memstore.MustNew(memstore.WithMaxAppendSize(16))
	_, err := store.Append(context.Background(), "blob-1", es.NoStream,
		es.EventData{Type: "Uploaded", ContentType: es.ContentTypeBinary, Data: make([]byte, 17)})
	fmt.Println(errors.Is(err, es.ErrMaxAppendSizeExceeded))
	// Output:
	// true
}
