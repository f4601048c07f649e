package projection

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
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
	// AttrPartition is the partition of a partitioned projection
	// ([Projection.Partitions]), on its metrics and spans.
	AttrPartition = attribute.Key("eventfold.projection.partition")
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
	return otelx.TracerOption(tp, ErrInvalidProjection, func(c *config, tp trace.TracerProvider) { c.tracers = tp })
}

// WithMeterProvider sets where the runner's metrics go;
// otel.GetMeterProvider() by default.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return otelx.MeterOption(mp, ErrInvalidProjection, func(c *config, mp metric.MeterProvider) { c.meters = mp })
}

// telemetry is a runner's tracer and instruments.
type telemetry struct {
	tracer     *otelx.Tracer
	projection string
	name       string // of the batch's span: "process {projection}"
	duration   metric.Float64Histogram
	size       metric.Int64Histogram
	applied    metric.Int64Counter
	retries    metric.Int64Counter
	poison     metric.Int64Counter
	// Observed while the runner runs (see observe).
	meter                 metric.Meter
	lagEvents, stateGauge metric.Int64ObservableGauge
	lagSeconds            metric.Float64ObservableGauge
	attrs                 attribute.Set
	byName                []metric.AddOption
	recordBy              []metric.RecordOption
	start                 []trace.SpanStartOption
}

// newTelemetry returns the telemetry of a runner of projection, or of one
// of its partitions when partition is not negative.
func newTelemetry(projection string, partition int, cfg config) (*telemetry, error) {
	mp := cfg.meters
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	attrs := []attribute.KeyValue{AttrProjection.String(projection)}
	if partition >= 0 {
		attrs = append(attrs, AttrPartition.Int(partition))
	}
	set := attribute.NewSet(attrs...)
	t := &telemetry{tracer: otelx.NewTracer(cfg.tracers, ScopeName), projection: projection, name: "process " + projection,
		byName: []metric.AddOption{metric.WithAttributeSet(set)}, recordBy: []metric.RecordOption{metric.WithAttributeSet(set)},
		start: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}}
	m := mp.Meter(ScopeName)
	t.meter, t.attrs = m, set
	var err1, err2, err3, err4, err5, err6, err7, err8 error
	t.duration, err1 = m.Float64Histogram("eventfold.projection.batch.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a projection's batches, from the first try to the commit."))
	t.applied, err2 = m.Int64Counter("eventfold.projection.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events a projection applied (committed)."))
	t.retries, err3 = m.Int64Counter("eventfold.projection.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Batches a projection tried again after a failure."))
	t.poison, err4 = m.Int64Counter("eventfold.projection.poison", metric.WithUnit("{event}"),
		metric.WithDescription("Poison events: events a projection could not apply (dead-lettered, or stopping it)."))
	t.lagEvents, err5 = m.Int64ObservableGauge("eventfold.projection.lag.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events of the log the projection consumes and has not applied yet (counted up to 100,000)."))
	t.lagSeconds, err6 = m.Float64ObservableGauge("eventfold.projection.lag.seconds", metric.WithUnit("s"),
		metric.WithDescription("How much older the last applied event is than the head of the log; 0 when caught up."))
	t.stateGauge, err7 = m.Int64ObservableGauge("eventfold.projection.state", metric.WithUnit("{state}"),
		metric.WithDescription("1 for the projection's current state (attribute eventfold.projection.state)."))
	t.size, err8 = m.Int64Histogram("eventfold.projection.batch.size", metric.WithUnit("{event}"),
		metric.WithDescription("Events in a projection's batches."))
	for _, err := range []error{err1, err2, err3, err4, err5, err6, err7, err8} {
		if err != nil {
			return nil, fmt.Errorf("projection: %w", err)
		}
	}
	return t, nil
}

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
	b := batch{t: t, span: otelx.NoSpan, began: time.Now(), n: len(events)}
	tr := t.tracer.Get()
	if tr == nil { // no SDK installed: no span at all
		return ctx, b
	}
	ctx, span := tr.Start(ctx, t.name, t.start...)
	b.span = span
	if !span.IsRecording() {
		return ctx, b
	}
	span.SetAttributes(t.attrs.ToSlice()...)
	span.SetAttributes(AttrVersion.Int(version),
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
	b.t.size.Record(ctx, int64(b.n), b.t.recordBy...)
	if err == nil {
		b.t.applied.Add(ctx, int64(b.n), b.t.byName...)
	}
	if b.span.IsRecording() {
		b.span.SetAttributes(AttrAttempts.Int(attempts))
	}
	otelx.End(b.span, err)
}

// AttrState is the attribute of eventfold.projection.state.
const AttrState = attribute.Key("eventfold.projection.state")

// observeTimeout bounds the reads of the log that measuring the lag makes
// at each collection.
const observeTimeout = 2 * time.Second

// observe registers the gauges of a running runner: its lag and its state,
// measured at each collection (lag reads the log: its head and the events
// after the checkpoint, at most MaxLagCount). The returned function
// unregisters them; Run calls it when it returns, so that a runner that
// stopped is not measured.
func (t *telemetry) observe(status func(context.Context) (Status, error), lag func(context.Context) (Lag, error)) func() {
	reg, err := t.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, observeTimeout)
		defer cancel()
		by := metric.WithAttributeSet(t.attrs)
		if st, err := status(ctx); err == nil {
			attrs := append(t.attrs.ToSlice(), AttrState.String(string(st.State)))
			o.ObserveInt64(t.stateGauge, 1, metric.WithAttributeSet(attribute.NewSet(attrs...)))
		}
		l, err := lag(ctx)
		if err != nil {
			return nil // no figure rather than a wrong one; Status says why
		}
		o.ObserveInt64(t.lagEvents, int64(l.Events), by)
		o.ObserveFloat64(t.lagSeconds, l.Time.Seconds(), by)
		return nil
	}, t.lagEvents, t.lagSeconds, t.stateGauge)
	if err != nil {
		return func() {}
	}
	return func() { _ = reg.Unregister() }
}

// poisoned counts a poison event.
func (t *telemetry) poisoned(ctx context.Context) { t.poison.Add(ctx, 1, t.byName...) }
