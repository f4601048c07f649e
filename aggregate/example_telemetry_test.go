package aggregate_test

import (
	"context"
	"fmt"
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/memstore"
)

// Clicked is the one event of a click counter.
type Clicked struct{}

// Clicks is the counter's state.
type Clicks int

func (c Clicks) evolve(Clicked) Clicks { return c + 1 }

// A repository given a tracer provider records a span for each command
// (create, update) with its load, decide and append: here the append's span
// comes from the store, wrapped by es/esotel.
func ExampleWithTracerProvider() {
	spans := tracetest.NewSpanRecorder() // in a service: an OTLP exporter
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	store, err := esotel.New(memstore.MustNew(), esotel.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}
	types, err := es.NewRegistry(es.Type[Clicked]("Clicked"))
	if err != nil {
		log.Fatal(err)
	}
	counters, err := aggregate.New(store, types, aggregate.Definition[Clicks, Clicked]{Category: "counter", Evolve: Clicks.evolve},
		aggregate.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}
	click := func(Clicks) ([]Clicked, error) { return []Clicked{{}}, nil }
	if _, err := counters.Create(context.Background(), "c-1", click); err != nil {
		log.Fatal(err)
	}
	if _, err := counters.Update(context.Background(), "c-1", click); err != nil {
		log.Fatal(err)
	}
	for _, s := range spans.Ended() {
		fmt.Println(s.Name())
	}
	// Output:
	// decide counter
	// append counter
	// create counter
	// read_stream counter
	// load counter
	// decide counter
	// append counter
	// update counter
}
