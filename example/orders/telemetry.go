package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// telemetry is the service's OpenTelemetry: its metrics, served in the
// Prometheus text format on /metrics, and, when an OTLP endpoint is set,
// its traces, exported over OTLP/HTTP. The library's packages record
// through the global providers that it installs.
type telemetry struct {
	metrics  http.Handler
	shutdown func(context.Context) error
}

// otlpConfigured reports whether the standard OpenTelemetry environment
// asks for traces over OTLP.
func otlpConfigured() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// setupTelemetry installs the global meter provider, with a Prometheus
// reader of its own, and, if endpoint (a URL such as
// http://localhost:4318) is set or the OTEL_EXPORTER_OTLP_* variables are,
// the global tracer provider exporting over OTLP/HTTP; extra span
// processors are added to it (tests record spans in memory). shutdown
// flushes and stops them.
func setupTelemetry(ctx context.Context, endpoint string, extra ...sdktrace.SpanProcessor) (*telemetry, error) {
	res := resource.NewSchemaless(semconv.ServiceName("orders"))
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithResource(res))
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t := &telemetry{metrics: promhttp.HandlerFor(registry, promhttp.HandlerOpts{}), shutdown: mp.Shutdown}

	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, p := range extra {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	if endpoint != "" || otlpConfigured() {
		var eopts []otlptracehttp.Option
		if endpoint != "" {
			eopts = append(eopts, otlptracehttp.WithEndpointURL(endpoint))
		}
		exp, err := otlptracehttp.New(ctx, eopts...)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("telemetry: OTLP: %w", err), mp.Shutdown(ctx))
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	if len(opts) > 1 {
		tp := sdktrace.NewTracerProvider(opts...)
		otel.SetTracerProvider(tp)
		t.shutdown = func(ctx context.Context) error { return errors.Join(tp.Shutdown(ctx), mp.Shutdown(ctx)) }
	}
	return t, nil
}

// traced wraps the API's handler in server spans named after the route
// ("POST /orders"), which continue the trace of a caller that sends a W3C
// traceparent header.
func traced(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "orders", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		if r.Pattern != "" {
			return r.Pattern
		}
		return r.Method
	}))
}
