package esotel_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/memstore"
)

// BenchmarkAppend appends one event at a time to memstore: bare (the
// baseline), wrapped with the default no-op providers (an application
// without an OpenTelemetry SDK), and wrapped with the SDK recording every
// span (batched to a discarding exporter) and the metrics.
func BenchmarkAppend(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	wrap := func(opts ...esotel.Option) func() es.Store {
		return func() es.Store {
			s, err := esotel.New(memstore.MustNew(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			return s
		}
	}
	for _, c := range []struct {
		name string
		open func() es.Store
	}{
		{"bare", func() es.Store { return memstore.MustNew() }},
		{"noop", wrap()},
		{"sdk", wrap(esotel.WithTracerProvider(tp), esotel.WithMeterProvider(mp))},
	} {
		b.Run(c.name, func(b *testing.B) {
			store := c.open()
			ev := es.EventData{Type: "OrderPlaced", Data: []byte(`{"amount":42}`), Metadata: []byte(`{"$correlationId":"c-1"}`)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := store.Append(b.Context(), "order-1", es.Any, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discard is a span exporter that drops what it is given.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
