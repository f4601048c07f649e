package projection_test

import (
	"context"
	"fmt"
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// A runner given a tracer provider records a span per batch, linked to the
// trace of the command that appended each event (which es/esotel wrote
// into the event's metadata).
func ExampleWithTracerProvider() {
	spans := tracetest.NewSpanRecorder() // in a service: an OTLP exporter
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	store, err := esotel.New(memstore.MustNew(), esotel.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}

	ctx, command := tp.Tracer("shop").Start(context.Background(), "PlaceOrder")
	res, err := store.Append(ctx, "order-1", es.NoStream, es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)})
	if err != nil {
		log.Fatal(err)
	}
	command.End()

	p := projection.Projection[projection.NoTx]{Name: "order_list", Handle: func(context.Context, projection.NoTx, projection.Batch) error {
		return nil
	}}
	runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, p, projection.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}
	run, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = runner.Run(run); close(done) }()
	if err := runner.WaitFor(context.Background(), res.Position); err != nil {
		log.Fatal(err)
	}
	stop()
	<-done

	for _, s := range spans.Ended() {
		if s.Name() == "process order_list" {
			for _, l := range s.Links() {
				fmt.Println(s.Name(), "links the command's trace:", l.SpanContext.TraceID() == command.SpanContext().TraceID())
			}
		}
	}
	// Output: process order_list links the command's trace: true
}
