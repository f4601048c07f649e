package esotel_test

import (
	"context"
	"fmt"
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/memstore"
)

// A multi-stream append through the wrapper is one span, named after the
// category of its streams when they share one.
func ExampleStore_AppendStreams() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)

	store, err := esotel.New(memstore.MustNew(), esotel.WithTracerProvider(tp), esotel.WithSystem("memory"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = es.AppendStreams(ctx, store,
		es.StreamAppend{Stream: "account-1", Expected: es.Any, Events: []es.EventData{{Type: "Debited", Data: []byte(`{"amount":5}`)}}},
		es.StreamAppend{Stream: "account-2", Expected: es.Any, Events: []es.EventData{{Type: "Credited", Data: []byte(`{"amount":5}`)}}},
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range spans.Ended() {
		for _, kv := range s.Attributes() {
			if kv.Key == esotel.AttrStreams {
				fmt.Println(s.Name(), kv.Value.AsStringSlice())
			}
		}
	}
	// Output:
	// append_streams account [account-1 account-2]
}
