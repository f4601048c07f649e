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

// A store wrapped by esotel records a span for each append, and its events
// carry the trace of the append, for whoever handles them later.
func ExampleNew() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder() // in a service: an OTLP exporter
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)

	store, err := esotel.New(memstore.MustNew(), esotel.WithTracerProvider(tp), esotel.WithSystem("memory"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, command := tp.Tracer("orders").Start(ctx, "PlaceOrder")
	if _, err := store.Append(ctx, "order-42", es.NoStream, es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)}); err != nil {
		log.Fatal(err)
	}
	command.End()

	for rec, err := range store.ReadStream(context.Background(), "order-42", es.ReadStreamOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Type, "caused by trace", esotel.SpanContext(rec).TraceID() == command.SpanContext().TraceID())
	}
	for _, s := range spans.Ended() {
		fmt.Println(s.Name())
	}
	// Output:
	// OrderPlaced caused by trace true
	// append order
	// PlaceOrder
	// read_stream order
}
