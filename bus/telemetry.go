package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold/internal/otelx"
)

// ScopeName is the instrumentation scope of the bus's tracer and meter.
const ScopeName = "github.com/eventfold/eventfold/bus"

// Metadata keys of the W3C trace context in a message's Watermill
// metadata, on every transport.
const (
	MetadataTraceParent = "traceparent"
	MetadataTraceState  = "tracestate"
)

// Attribute keys of the bus's spans and metrics, beside OpenTelemetry's
// messaging conventions (messaging.system, messaging.operation.type,
// messaging.destination.name, messaging.message.id,
// messaging.consumer.group.name).
const (
	AttrKind = attribute.Key("eventfold.message.kind") // "command" or "event"
	AttrType = attribute.Key("eventfold.message.type")
	// AttrOutcome is "ok", or the kind of the handler's error: "decode",
	// "timeout", "canceled", "domain" (an error registered with
	// WithErrors), "other".
	AttrOutcome = attribute.Key("eventfold.outcome")
)

// WithTracerProvider sets where the bus's spans go;
// otel.GetTracerProvider() (a no-op unless the application installs an
// SDK) by default.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return otelx.TracerOption(tp, ErrInvalidOption, func(c *config, tp trace.TracerProvider) { c.tracers = tp })
}

// WithMeterProvider sets where the bus's metrics go;
// otel.GetMeterProvider() by default.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return otelx.MeterOption(mp, ErrInvalidOption, func(c *config, mp metric.MeterProvider) { c.meters = mp })
}

// telemetry is a bus's tracer and instruments.
type telemetry struct {
	tracer   *otelx.Tracer
	duration metric.Float64Histogram
	timeouts metric.Int64Counter
	mu       sync.RWMutex
	sets     map[[4]string][]metric.RecordOption // kind, type, group, outcome
	names    map[[3]string]string                // op, type, group → span name
	producer []trace.SpanStartOption
	consumer []trace.SpanStartOption
	errKind  func(error) string // the bus's errorKind, set once
}

var propagator = propagation.TraceContext{}

func newTelemetry(cfg config) (*telemetry, error) {
	if cfg.noTelemetry {
		return nil, nil
	}
	mp := cfg.meters
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	t := &telemetry{tracer: otelx.NewTracer(cfg.tracers, ScopeName), sets: map[[4]string][]metric.RecordOption{},
		names:    map[[3]string]string{},
		producer: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)},
		consumer: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}}
	m := mp.Meter(ScopeName)
	var err1, err2 error
	t.duration, err1 = m.Float64Histogram("eventfold.bus.handler.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of command and event handlers, by kind, type, group and outcome; its count is the messages handled."))
	t.timeouts, err2 = m.Int64Counter("eventfold.bus.request.timeouts", metric.WithUnit("{request}"),
		metric.WithDescription("Requests whose reply did not come in time."))
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("bus: telemetry: %w", errors.Join(err1, err2))
	}
	return t, nil
}

// inject writes the trace context of ctx into msg's metadata.
func inject(ctx context.Context, msg *message.Message) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		propagator.Inject(ctx, propagation.MapCarrier(msg.Metadata))
	}
}

// extract returns ctx with the trace context of msg's metadata, if any, as
// its remote parent.
func extract(ctx context.Context, msg *message.Message) context.Context {
	if msg.Metadata.Get(MetadataTraceParent) == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(msg.Metadata))
}

// startSend starts the producer span of a command sent or requested.
func (t *telemetry) startSend(ctx context.Context, name, topic string, msg *message.Message) (context.Context, trace.Span) {
	if t == nil {
		return ctx, otelx.NoSpan
	}
	tr := t.tracer.Get()
	if tr == nil {
		inject(ctx, msg) // the caller's trace, if it has one
		return ctx, otelx.NoSpan
	}
	ctx, span := tr.Start(ctx, t.name("send", name, ""), t.producer...)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.operation.type", "send"), attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.message.id", msg.UUID), AttrKind.String("command"), AttrType.String(name))
	}
	inject(ctx, msg)
	return ctx, span
}

// handling is a handler under way: its span and clock.
type handling struct {
	t     *telemetry
	span  trace.Span
	began time.Time
	key   [3]string
}

// startHandle starts the consumer span of a handler of msg, the child of
// the trace msg carries: "process {type}" for a command, "process {type}
// {group}" for an event handler group.
func (t *telemetry) startHandle(ctx context.Context, kind, name, group string, msg *message.Message) (context.Context, handling) {
	if t == nil {
		return ctx, handling{span: otelx.NoSpan}
	}
	h := handling{t: t, span: otelx.NoSpan, began: time.Now(), key: [3]string{kind, name, group}}
	tr := t.tracer.Get()
	if tr == nil {
		return ctx, h
	}
	ctx, span := tr.Start(extract(ctx, msg), t.name("process", name, group), t.consumer...)
	h.span = span
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.operation.type", "process"), attribute.String("messaging.message.id", msg.UUID),
			AttrKind.String(kind), AttrType.String(name))
		if group != "" {
			span.SetAttributes(attribute.String("messaging.consumer.group.name", group))
		}
	}
	return ctx, h
}

// name returns the span name "{op} {type}[ {group}]", made once.
func (t *telemetry) name(op, typ, group string) string {
	k := [3]string{op, typ, group}
	t.mu.RLock()
	n, ok := t.names[k]
	t.mu.RUnlock()
	if ok {
		return n
	}
	n = op + " " + typ
	if group != "" {
		n += " " + group
	}
	t.mu.Lock()
	t.names[k] = n
	t.mu.Unlock()
	return n
}

// errorKind names the kind of a handler's error for the metrics: "decode"
// (a message that does not decode), "timeout" (the handler's deadline),
// "canceled", "domain" (an error registered with WithErrors, such as a
// domain rule), or "other".
func (b *Bus) errorKind(err error) string {
	var de *decodeError
	switch {
	case errors.As(err, &de):
		return "decode"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case len(b.codes(err)) > 0:
		return "domain"
	}
	return "other"
}

// end records the handler's outcome.
func (h handling) end(ctx context.Context, err error) {
	if h.t == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = h.t.errKind(err)
	}
	h.t.duration.Record(ctx, time.Since(h.began).Seconds(), h.t.options(h.key, outcome)...)
	otelx.End(h.span, err)
}

// options returns the attributes of a handler's measurement, made once per
// kind, type, group and outcome.
func (t *telemetry) options(key [3]string, outcome string) []metric.RecordOption {
	k := [4]string{key[0], key[1], key[2], outcome}
	t.mu.RLock()
	opts, ok := t.sets[k]
	t.mu.RUnlock()
	if ok {
		return opts
	}
	attrs := []attribute.KeyValue{AttrKind.String(key[0]), AttrType.String(key[1]), AttrOutcome.String(outcome)}
	if key[2] != "" {
		attrs = append(attrs, attribute.String("messaging.consumer.group.name", key[2]))
	}
	opts = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	t.mu.Lock()
	t.sets[k] = opts
	t.mu.Unlock()
	return opts
}

// timeout counts a request whose reply did not come in time.
func (t *telemetry) timeout(ctx context.Context) {
	if t != nil {
		t.timeouts.Add(ctx, 1)
	}
}
