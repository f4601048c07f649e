package aggregate

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold/internal/otelx"
)

// ScopeName is the instrumentation scope of the repository's tracer and
// meter.
const ScopeName = "github.com/eventfold/eventfold/aggregate"

// Attribute keys of the repository's spans.
const (
	AttrCategory = attribute.Key("eventfold.aggregate.category")
	AttrID       = attribute.Key("eventfold.aggregate.id")
	AttrVersion  = attribute.Key("eventfold.aggregate.version")
	AttrAttempt  = attribute.Key("eventfold.aggregate.attempt")
	AttrAttempts = attribute.Key("eventfold.aggregate.attempts")
	AttrEvents   = attribute.Key("eventfold.aggregate.events")
	AttrSnapshot = attribute.Key("eventfold.aggregate.snapshot")
)

// WithTracerProvider sets where the repository's spans go;
// otel.GetTracerProvider() (a no-op unless the application installs an
// SDK) by default. See the package documentation, "Telemetry".
func WithTracerProvider(tp trace.TracerProvider) Option {
	return otelx.TracerOption(tp, ErrInvalidOption, func(c *config, tp trace.TracerProvider) { c.tracers = tp })
}

// WithMeterProvider sets where the repository's metrics go;
// otel.GetMeterProvider() by default.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return otelx.MeterOption(mp, ErrInvalidOption, func(c *config, mp metric.MeterProvider) { c.meters = mp })
}

// telemetry is a repository's tracer and metrics; nil when switched off
// (for the benchmarks that measure what it costs).
type telemetry struct {
	tracer     *otelx.Tracer
	retries    metric.Int64Counter
	byCategory []metric.AddOption
	category   attribute.KeyValue
	kind       []trace.SpanStartOption
	names      [4]string // by op
}

// The operations of a repository that have spans.
type op int

const (
	opLoad op = iota
	opDecide
	opUpdate
	opCreate
)

func newTelemetry(category string, cfg config) (*telemetry, error) {
	if cfg.noTelemetry {
		return nil, nil
	}
	mp := cfg.meters
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	t := &telemetry{tracer: otelx.NewTracer(cfg.tracers, ScopeName), category: AttrCategory.String(category)}
	t.byCategory = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(t.category))}
	t.kind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
	t.names = [4]string{"load " + category, "decide " + category, "update " + category, "create " + category}
	var err error
	t.retries, err = mp.Meter(ScopeName).Int64Counter("eventfold.aggregate.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Times Update decided a command again after a concurrent writer."))
	if err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	return t, nil
}

// span is a span of the repository; otelx.NoSpan when there is none.
type span struct{ s trace.Span }

var noSpan = span{otelx.NoSpan}

// start starts the span of operation o on aggregate id.
func (t *telemetry) start(ctx context.Context, o op, id string) (context.Context, span) {
	if t == nil {
		return ctx, noSpan
	}
	tr := t.tracer.Get()
	if tr == nil { // no SDK installed: no span at all
		return ctx, noSpan
	}
	ctx, s := tr.Start(ctx, t.names[o], t.kind...)
	if s.IsRecording() {
		s.SetAttributes(t.category, AttrID.String(id))
	}
	return ctx, span{s}
}

func (s span) set(kv ...attribute.KeyValue) {
	if s.s.IsRecording() {
		s.s.SetAttributes(kv...)
	}
}

// end ends the span, recording err unless it is nil.
func (s span) end(err error) { otelx.End(s.s, err) }

// conflict records a conflict that makes Update decide again.
func (t *telemetry) conflict(ctx context.Context, s span, attempt int, err error) {
	if t == nil {
		return
	}
	t.retries.Add(ctx, 1, t.byCategory...)
	if s.s.IsRecording() {
		s.s.AddEvent("conflict", trace.WithAttributes(AttrAttempt.Int(attempt), attribute.String("error", err.Error())))
	}
}
