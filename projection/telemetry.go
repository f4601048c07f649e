package projection

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/internal/otelx"
)

// ScopeName is the instrumentation scope of the runners' tracer and meter.
const ScopeName = "github.com/eventfold/eventfold/projection"

// Attribute keys of the runners' spans and metrics.
const (
	AttrProjection     = attribute.Key("eventfold.projection")
	AttrVersion        = attribute.Key("eventfold.projection.version")
	AttrCheckpointFrom = attribute.Key("eventfold.checkpoint.from")
	AttrCheckpointTo   = attribute.Key("eventfold.checkpoint.to")
	AttrAttempts       = attribute.Key("eventfold.attempts")
	// attrBatchSize is the messaging convention's count of a batch.
	attrBatchSize = attribute.Key("messaging.batch.message_count")
)

// maxLinks bounds the links of a batch's span: one per distinct trace of
// its events, up to this many.
const maxLinks = 128

// WithTracerProvider sets where the runner's spans go;
// otel.GetTracerProvider() (a no-op unless the application installs an
// SDK) by default.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return fmt.Errorf("%w: nil tracer provider", ErrInvalidProjection)
		}
		c.tracers = tp
		return nil
	}
}

// WithMeterProvider sets where the runner's metrics go;
// otel.GetMeterProvider() by default.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return fmt.Errorf("%w: nil meter provider", ErrInvalidProjection)
		}
		c.meters = mp
		return nil
	}
}

// telemetry is a runner's tracer and instruments.
type telemetry struct {
	tracer   *otelx.Tracer
	name     string // of the batch's span
	duration metric.Float64Histogram
	applied  metric.Int64Counter
	retries  metric.Int64Counter
	byName   []metric.AddOption
	recordBy []metric.RecordOption
	start    []trace.SpanStartOption
}

func newTelemetry(projection string, cfg config) (*telemetry, error) {
	mp := cfg.meters
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	set := attribute.NewSet(AttrProjection.String(projection))
	t := &telemetry{tracer: otelx.NewTracer(cfg.tracers, ScopeName), name: "process " + projection,
		byName: []metric.AddOption{metric.WithAttributeSet(set)}, recordBy: []metric.RecordOption{metric.WithAttributeSet(set)},
		start: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}}
	m := mp.Meter(ScopeName)
	var err1, err2, err3 error
	t.duration, err1 = m.Float64Histogram("eventfold.projection.batch.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a projection's batches, from the first try to the commit."))
	t.applied, err2 = m.Int64Counter("eventfold.projection.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events a projection applied (committed)."))
	t.retries, err3 = m.Int64Counter("eventfold.projection.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Batches a projection tried again after a failure."))
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return nil, fmt.Errorf("projection: %w", err)
		}
	}
	return t, nil
}

// noSpan records nothing, and ending it ends nothing.
var noSpan = trace.SpanFromContext(context.Background())

// batch is the span and clock of one batch.
type batch struct {
	t     *telemetry
	span  trace.Span
	began time.Time
	n     int
}

// startBatch starts the span of a batch of events that moves the
// checkpoint from, to: a span "process {projection}" linked to the traces
// that caused its events (a parent would be misleading: a batch has many
// causes).
func (t *telemetry) startBatch(ctx context.Context, version int, events []Event, from, to string) (context.Context, batch) {
	b := batch{t: t, span: noSpan, began: time.Now(), n: len(events)}
	tr := t.tracer.Get()
	if tr == nil { // no SDK installed: no span at all
		return ctx, b
	}
	ctx, span := tr.Start(ctx, t.name, t.start...)
	b.span = span
	if !span.IsRecording() {
		return ctx, b
	}
	span.SetAttributes(AttrProjection.String(t.name[len("process "):]), AttrVersion.Int(version),
		attrBatchSize.Int(len(events)), AttrCheckpointFrom.String(from), AttrCheckpointTo.String(to))
	seen := map[trace.TraceID]bool{}
	for _, ev := range events {
		if len(seen) == maxLinks {
			break
		}
		if link := esotel.Link(ev.RecordedEvent); link.SpanContext.IsValid() && !seen[link.SpanContext.TraceID()] {
			seen[link.SpanContext.TraceID()] = true
			span.AddLink(link)
		}
	}
	return ctx, b
}

// retry counts a retry of the batch.
func (b batch) retry(ctx context.Context) { b.t.retries.Add(ctx, 1, b.t.byName...) }

// end ends the batch after attempts tries, with err if it failed.
func (b batch) end(ctx context.Context, attempts int, err error) {
	b.t.duration.Record(ctx, time.Since(b.began).Seconds(), b.t.recordBy...)
	if err == nil {
		b.t.applied.Add(ctx, int64(b.n), b.t.byName...)
	}
	if b.span.IsRecording() {
		b.span.SetAttributes(AttrAttempts.Int(attempts))
		if err != nil {
			b.span.RecordError(err)
			b.span.SetStatus(codes.Error, err.Error())
		}
	}
	b.span.End()
}
