package esotel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/internal/otelx"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/eventfold/eventfold/es/esotel"

// Keys of the W3C trace context in an event's metadata.
const (
	MetadataTraceParent = "traceparent"
	MetadataTraceState  = "tracestate"
)

// Attribute keys of eventfold's own, where OpenTelemetry has no convention.
const (
	AttrStream           = attribute.Key("eventfold.stream")
	AttrExpectedRevision = attribute.Key("eventfold.expected_revision")
	AttrRevision         = attribute.Key("eventfold.revision")
	AttrPosition         = attribute.Key("eventfold.position")
	AttrOutcome          = attribute.Key("eventfold.outcome")
)

// ErrInvalidOption is wrapped by the errors of [New] for options it cannot
// use.
var ErrInvalidOption = errors.New("esotel: invalid option")

// Option configures [New].
type Option func(*config) error

type config struct {
	tracers trace.TracerProvider
	meters  metric.MeterProvider
	system  string
}

// WithTracerProvider sets where the spans go; otel.GetTracerProvider() (the
// global provider, a no-op unless the application installs one) by
// default.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return otelx.TracerOption(tp, ErrInvalidOption, func(c *config, tp trace.TracerProvider) { c.tracers = tp })
}

// WithMeterProvider sets where the metrics go; otel.GetMeterProvider() by
// default.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return otelx.MeterOption(mp, ErrInvalidOption, func(c *config, mp metric.MeterProvider) { c.meters = mp })
}

// WithSystem sets the db.system.name of the spans and metrics: the
// store's kind, such as "eventstoredb", "sqlite", "postgresql" or
// "memory"; "eventfold" by default.
func WithSystem(name string) Option {
	return func(c *config) error {
		if name == "" {
			return fmt.Errorf("%w: empty system name", ErrInvalidOption)
		}
		c.system = name
		return nil
	}
}

// Store is an [es.Store] that records spans and metrics around another.
// It is safe for concurrent use if the store it wraps is.
type Store struct {
	s         es.Store
	tracer    *otelx.Tracer
	system    attribute.KeyValue
	duration  metric.Float64Histogram
	appended  metric.Int64Counter
	conflicts metric.Int64Counter
	// The attributes of the metrics, made once: an operation with no-op
	// providers then allocates nothing for them.
	bySystem                []metric.AddOption
	ok, conflicted, errored []metric.RecordOption
	names                   spanNames
}

var _ es.Store = (*Store)(nil)

// New wraps s. Invalid options are reported together, each wrapping
// [ErrInvalidOption].
func New(s es.Store, opts ...Option) (*Store, error) {
	cfg := config{meters: otel.GetMeterProvider(), system: "eventfold"}
	var errs []error
	if s == nil {
		errs = append(errs, fmt.Errorf("%w: nil store", ErrInvalidOption))
	}
	for _, opt := range opts {
		if opt != nil {
			errs = append(errs, opt(&cfg))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	st := &Store{
		s:      s,
		tracer: otelx.NewTracer(cfg.tracers, ScopeName),
		system: semconv.DBSystemNameKey.String(cfg.system),
	}
	st.bySystem = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(st.system))}
	outcome := func(o string) []metric.RecordOption {
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(st.system, AttrOutcome.String(o)))}
	}
	st.ok, st.conflicted, st.errored = outcome("ok"), outcome("conflict"), outcome("error")
	meter := cfg.meters.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	var err error
	st.duration, err = meter.Float64Histogram("eventfold.store.append.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of appends to the event store."))
	errs = append(errs, err)
	st.appended, err = meter.Int64Counter("eventfold.store.append.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events written to the event store."))
	errs = append(errs, err)
	st.conflicts, err = meter.Int64Counter("eventfold.store.append.conflicts", metric.WithUnit("{conflict}"),
		metric.WithDescription("Appends that failed with a wrong expected version."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("esotel: %w", err)
	}
	return st, nil
}

// Unwrap returns the store that s wraps.
func (s *Store) Unwrap() es.Store { return s.s }

// category returns the part of a stream name before its first '-', the
// low-cardinality target of span names.
func category(stream string) string {
	if i := strings.IndexByte(stream, '-'); i > 0 {
		return stream[:i]
	}
	return stream
}

// clientSpan is the start options of every span of the store, made once.
var clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}

// start starts the span of operation op on stream (none for `$all`), and
// reports whether it records: only then are its attributes worth making.
func (s *Store) start(ctx context.Context, op, stream string) (context.Context, trace.Span, bool) {
	target := "$all"
	if stream != "" {
		target = category(stream)
	}
	ctx, span, recording := s.startOn(ctx, op, target)
	if recording && stream != "" {
		span.SetAttributes(AttrStream.String(stream))
	}
	return ctx, span, recording
}

// startOn starts the span of operation op on target, "{op} {target}" (op
// alone if target is empty), and reports whether it records.
func (s *Store) startOn(ctx context.Context, op, target string) (context.Context, trace.Span, bool) {
	tr := s.tracer.Get()
	if tr == nil { // no SDK installed: no span at all
		return ctx, otelx.NoSpan, false
	}
	ctx, span := tr.Start(ctx, s.names.get(op, target), clientSpan...)
	if !span.IsRecording() {
		return ctx, span, false
	}
	span.SetAttributes(s.system, semconv.DBOperationName(op))
	return ctx, span, true
}

// spanNames keeps the names of spans, "{operation} {category}", so that
// naming a span allocates nothing once its name was made. Categories are
// few; past maxSpanNames, names are made each time.
type spanNames struct {
	mu    sync.RWMutex
	names map[[2]string]string
}

const maxSpanNames = 1024

// get returns "{op} {target}", or op if there is no target.
func (n *spanNames) get(op, target string) string {
	key := [2]string{op, target}
	n.mu.RLock()
	name, ok := n.names[key]
	n.mu.RUnlock()
	if ok {
		return name
	}
	name = op
	if target != "" {
		name += " " + target
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.names == nil {
		n.names = make(map[[2]string]string)
	}
	if len(n.names) < maxSpanNames {
		n.names[[2]string{op, strings.Clone(target)}] = name
	}
	return name
}

// errorType names the kind of err for error.type.
func errorType(err error) string {
	switch {
	case errors.Is(err, es.ErrWrongExpectedVersion):
		return "wrong_expected_version"
	case errors.Is(err, es.ErrStreamDeleted):
		return "stream_deleted"
	case errors.Is(err, es.ErrStreamNotFound):
		return "stream_not_found"
	case errors.Is(err, es.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, es.ErrInvalidArgument), errors.Is(err, es.ErrMaxAppendSizeExceeded):
		return "invalid_argument"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "context"
	}
	return reflect.TypeOf(err).String()
}

// fail records err on span.
func fail(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	otelx.Fail(span, err)
	span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
}

// Append implements [es.Store]: a span "append {category}", the trace
// context into the events' metadata, and the append metrics.
func (s *Store) Append(ctx context.Context, stream string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	ctx, span, recording := s.start(ctx, "append", stream)
	defer span.End()
	if recording {
		span.SetAttributes(AttrExpectedRevision.String(expected.String()))
		if len(events) > 1 {
			span.SetAttributes(semconv.DBOperationBatchSize(len(events)))
		}
		events = withTraceContext(span.SpanContext(), events)
	}
	began := time.Now()
	res, err := s.s.Append(ctx, stream, expected, events...)
	if s.recordAppend(ctx, span, began, len(events), err); err != nil {
		return res, err
	}
	if recording && !res.NoStream {
		span.SetAttributes(AttrRevision.Int64(int64(min(res.Revision, 1<<63-1))), AttrPosition.String(res.Position.String()))
	}
	return res, nil
}

// recordAppend records the metrics and the outcome on span of an append of n
// events, or of a multi-stream append of n events in all, that began at
// began and returned err.
func (s *Store) recordAppend(ctx context.Context, span trace.Span, began time.Time, n int, err error) {
	outcome := s.ok
	switch {
	case errors.Is(err, es.ErrWrongExpectedVersion):
		outcome = s.conflicted
		s.conflicts.Add(ctx, 1, s.bySystem...)
		conflict(span, err)
	case err != nil:
		outcome = s.errored
	}
	s.duration.Record(ctx, time.Since(began).Seconds(), outcome...)
	if err != nil {
		fail(span, err)
		return
	}
	s.appended.Add(ctx, int64(n), s.bySystem...)
}

// conflict adds the span event of a wrong expected version.
func conflict(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	var wev *es.WrongExpectedVersionError
	if errors.As(err, &wev) {
		span.AddEvent("wrong_expected_version", trace.WithAttributes(
			attribute.String("expected", wev.Expected.String()), attribute.String("actual", wev.Actual.String())))
	}
}

// DeleteStream implements [es.Store], with a span "delete_stream {category}".
func (s *Store) DeleteStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.delete(ctx, "delete_stream", stream, expected, s.s.DeleteStream)
}

// TombstoneStream implements [es.Store], with a span "tombstone_stream
// {category}".
func (s *Store) TombstoneStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.delete(ctx, "tombstone_stream", stream, expected, s.s.TombstoneStream)
}

func (s *Store) delete(ctx context.Context, op, stream string, expected es.ExpectedRevision,
	do func(context.Context, string, es.ExpectedRevision) (es.DeleteResult, error)) (es.DeleteResult, error) {
	ctx, span, recording := s.start(ctx, op, stream)
	defer span.End()
	if recording {
		span.SetAttributes(AttrExpectedRevision.String(expected.String()))
	}
	res, err := do(ctx, stream, expected)
	if err != nil {
		fail(span, err)
		return res, err
	}
	if recording {
		span.SetAttributes(AttrPosition.String(res.Position.String()))
	}
	return res, nil
}

// ReadStream implements [es.Store]: a span "read_stream {category}" from
// the first event asked for until the iteration ends.
func (s *Store) ReadStream(ctx context.Context, stream string, opts es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		ctx, span, _ := s.start(ctx, "read_stream", stream)
		s.read(span, opts.Direction, s.s.ReadStream(ctx, stream, opts), yield)
	}
}

// ReadAll implements [es.Store]: a span "read_all $all" from the first
// event asked for until the iteration ends.
func (s *Store) ReadAll(ctx context.Context, opts es.ReadAllOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		ctx, span, _ := s.start(ctx, "read_all", "")
		s.read(span, opts.Direction, s.s.ReadAll(ctx, opts), yield)
	}
}

// read passes the events of seq to yield, counting them on span, which it
// ends.
func (s *Store) read(span trace.Span, dir es.Direction, seq iter.Seq2[es.RecordedEvent, error], yield func(es.RecordedEvent, error) bool) {
	defer span.End()
	if !span.IsRecording() {
		for ev, err := range seq {
			if !yield(ev, err) {
				return
			}
		}
		return
	}
	span.SetAttributes(attribute.String("eventfold.direction", dir.String()))
	n := 0
	for ev, err := range seq {
		if err != nil {
			fail(span, err)
		} else {
			n++
		}
		if !yield(ev, err) {
			break
		}
	}
	span.SetAttributes(semconv.DBResponseReturnedRows(n))
}

// SubscribeAll implements [es.Store]: the wrapped store's, without spans.
func (s *Store) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return s.s.SubscribeAll(ctx, opts)
}

// SubscribeStream implements [es.Store]: the wrapped store's, without spans.
func (s *Store) SubscribeStream(ctx context.Context, stream string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return s.s.SubscribeStream(ctx, stream, opts)
}

// propagator writes and reads the W3C trace context.
var propagator = propagation.TraceContext{}

// withTraceContext returns events with the trace context of sc in their
// metadata; events itself if sc is not valid. A trace context already
// there is replaced: it came with metadata carried over from a cause
// (es.CausedBy), and the append's own span, a descendant of that cause
// when the trace flowed, is the precise one.
func withTraceContext(sc trace.SpanContext, events []es.EventData) []es.EventData {
	if !sc.IsValid() || len(events) == 0 {
		return events
	}
	carrier := propagation.MapCarrier{}
	propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	out := make([]es.EventData, len(events))
	for i, ev := range events {
		if md, ok := addTraceContext(ev.Metadata, carrier); ok {
			ev.Metadata = md
		}
		out[i] = ev
	}
	return out
}

// addTraceContext returns metadata with the keys of carrier set (and a
// trace state it does not have removed), unless it is not a JSON object.
func addTraceContext(metadata []byte, carrier propagation.MapCarrier) ([]byte, bool) {
	obj := map[string]json.RawMessage{}
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &obj); err != nil || obj == nil {
			return nil, false
		}
	}
	delete(obj, MetadataTraceState)
	for k, v := range carrier {
		b, _ := json.Marshal(v) // a string always encodes
		obj[k] = b
	}
	out, err := json.Marshal(obj)
	return out, err == nil
}

// SpanContext returns the trace context that the metadata of rec carries
// (see the package documentation): remote, and invalid if rec has none.
func SpanContext(rec es.RecordedEvent) trace.SpanContext {
	return trace.SpanContextFromContext(Extract(context.Background(), rec))
}

// Extract returns ctx with the trace context of rec's metadata as its
// remote parent, for work that continues the trace of what caused rec (ctx
// itself if rec carries none).
func Extract(ctx context.Context, rec es.RecordedEvent) context.Context {
	var obj map[string]json.RawMessage
	if len(rec.Metadata) == 0 || json.Unmarshal(rec.Metadata, &obj) != nil {
		return ctx
	}
	carrier := propagation.MapCarrier{}
	for _, k := range []string{MetadataTraceParent, MetadataTraceState} {
		var v string
		if raw, ok := obj[k]; ok && json.Unmarshal(raw, &v) == nil {
			carrier[k] = v
		}
	}
	if len(carrier) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, carrier)
}

// Link returns a span link to the trace of what caused rec, for a span
// that handles many events at once (a projection batch), where a parent
// would be misleading. Its SpanContext is invalid if rec carries none.
func Link(rec es.RecordedEvent) trace.Link {
	return trace.Link{SpanContext: SpanContext(rec), Attributes: []attribute.KeyValue{AttrStream.String(rec.Stream)}}
}
