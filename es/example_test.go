package es_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
)

// Expected revisions that come from outside the program, such as an HTTP
// If-Match header, are parsed.
func ExampleParseExpectedRevision() {
	for _, s := range []string{"any", "no_stream", "stream-exists", "42", "-1"} {
		r, err := es.ParseExpectedRevision(s)
		if err != nil {
			fmt.Println(errors.Is(err, es.ErrInvalidArgument), err)
			continue
		}
		fmt.Printf("%s: %v\n", s, r)
	}
	// Output:
	// any: any
	// no_stream: no stream
	// stream-exists: stream exists
	// 42: 42
	// true es: invalid argument: negative expected revision -1
}

// A conflicting append reports what it expected and what it found.
func ExampleWrongExpectedVersionError() {
	ctx := context.Background()
	store := memstore.MustNew()
	placed := es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)}
	if _, err := store.Append(ctx, "order-o-1", es.NoStream, placed); err != nil {
		log.Fatal(err)
	}

	// A second writer also believes the order is new.
	_, err := store.Append(ctx, "order-o-1", es.NoStream, placed)
	var conflict *es.WrongExpectedVersionError
	if errors.As(err, &conflict) {
		fmt.Println(conflict.Stream, "expected:", conflict.Expected, "actual:", conflict.Actual)
	}
	fmt.Println(errors.Is(err, es.ErrWrongExpectedVersion))
	// Output:
	// order-o-1 expected: no stream actual: 0
	// true
}

// Appends check the expected revision; reads are iterators that end with an
// error rather than silently.
func ExampleStore() {
	ctx := context.Background()
	var store es.Store = memstore.MustNew()

	res, err := store.Append(ctx, "order-o-1", es.NoStream,
		es.EventData{Type: "OrderPlaced", Data: []byte(`{"amount":42}`)},
		es.EventData{Type: "OrderPaid", Data: []byte(`{}`)},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("last revision:", res.Revision)

	if _, err := store.Append(ctx, "order-o-1", es.Exact(res.Revision), es.EventData{Type: "OrderShipped"}); err != nil {
		log.Fatal(err)
	}
	for rec, err := range store.ReadStream(ctx, "order-o-1", es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Revision, rec.Type)
	}
	for _, err := range store.ReadStream(ctx, "order-o-2", es.ReadStreamOptions{}) {
		fmt.Println(errors.Is(err, es.ErrStreamNotFound))
	}
	// Output:
	// last revision: 1
	// 2 OrderShipped
	// 1 OrderPaid
	// 0 OrderPlaced
	// true
}

// A stream's metadata limits what reads return.
func ExampleSetStreamMetadata() {
	ctx := context.Background()
	store := memstore.MustNew()
	for i := range 5 {
		if _, err := store.Append(ctx, "sensor-1", es.Any, es.EventData{Type: "Measured", Data: fmt.Appendf(nil, `{"n":%d}`, i)}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := es.SetStreamMetadata(ctx, store, "sensor-1", es.NoStream, es.StreamMetadata{MaxCount: 2}); err != nil {
		log.Fatal(err)
	}
	for rec, err := range store.ReadStream(ctx, "sensor-1", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Revision, string(rec.Data))
	}
	m, rev, err := es.GetStreamMetadata(ctx, store, "sensor-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("max count:", m.MaxCount, "metadata revision:", rev)
	// The revision read is what a conditional replacement expects.
	m.MaxCount = 3
	if _, err := es.SetStreamMetadata(ctx, store, "sensor-1", rev, m); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 3 {"n":3}
	// 4 {"n":4}
	// max count: 2 metadata revision: 0
}
