package esotel_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/estest"
	"github.com/eventfold/eventfold/es/memstore"
)

// The wrapper keeps the contract: the conformance suite passes through it
// (with the default, no-op, providers: with a recording one, appends add
// the trace context to the events' metadata, which the suite compares).
func TestConformance(t *testing.T) {
	estest.Run(t, func(*testing.T) es.Store {
		s, err := esotel.New(memstore.MustNew(), esotel.WithSystem("memory"))
		require.NoError(t, err)
		return s
	})
}

// instrumented is a store wrapped with recording providers.
type instrumented struct {
	*esotel.Store
	spans   *tracetest.SpanRecorder
	tracer  trace.Tracer
	metrics *sdkmetric.ManualReader
}

func newInstrumented(t *testing.T) instrumented {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	s, err := esotel.New(memstore.MustNew(), esotel.WithTracerProvider(tp), esotel.WithMeterProvider(mp), esotel.WithSystem("memory"))
	require.NoError(t, err)
	return instrumented{Store: s, spans: spans, tracer: tp.Tracer("test"), metrics: reader}
}

// span returns the one ended span named name.
func (in instrumented) span(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range in.spans.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %q", name)
	return found[0]
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestAppendSpanAndTraceContext(t *testing.T) {
	in := newInstrumented(t)
	ctx, command := in.tracer.Start(t.Context(), "command")
	_, err := in.Append(ctx, "order-42", es.NoStream,
		es.EventData{Type: "OrderPlaced", Data: []byte(`{}`), Metadata: []byte(`{"$correlationId":"checkout-7","n":1}`)},
		es.EventData{Type: "OrderConfirmed", Data: []byte(`{}`)},
	)
	require.NoError(t, err)
	command.End()

	span := in.span(t, "append order")
	assert.Equal(t, command.SpanContext().SpanID(), span.Parent().SpanID(), "a child of the command's span")
	assert.Equal(t, trace.SpanKindClient, span.SpanKind())
	a := attrs(span)
	assert.Equal(t, "memory", a["db.system.name"].AsString())
	assert.Equal(t, "append", a["db.operation.name"].AsString())
	assert.Equal(t, int64(2), a["db.operation.batch.size"].AsInt64())
	assert.Equal(t, "order-42", a[esotel.AttrStream].AsString())
	assert.Equal(t, "no stream", a[esotel.AttrExpectedRevision].AsString())
	assert.Equal(t, int64(1), a[esotel.AttrRevision].AsInt64())

	var recs []es.RecordedEvent
	for rec, err := range in.Unwrap().ReadStream(t.Context(), "order-42", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	require.Len(t, recs, 2)
	for _, rec := range recs {
		sc := esotel.SpanContext(rec)
		assert.True(t, sc.IsRemote())
		assert.Equal(t, span.SpanContext().TraceID(), sc.TraceID(), "the event carries the append's trace")
		assert.Equal(t, span.SpanContext().SpanID(), sc.SpanID())
		link := esotel.Link(rec)
		assert.Equal(t, sc, link.SpanContext)
	}
	var md map[string]any
	require.NoError(t, json.Unmarshal(recs[0].Metadata, &md))
	assert.Equal(t, "checkout-7", md[es.MetadataCorrelationID], "other keys are kept")
	assert.Equal(t, 1.0, md["n"], "with their JSON types")
	assert.Contains(t, md, esotel.MetadataTraceParent)
}

func TestTraceContextReplaced(t *testing.T) {
	in := newInstrumented(t)
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	_, err := in.Append(t.Context(), "order-1", es.Any,
		es.EventData{Type: "A", Metadata: []byte(`{"traceparent":"` + parent + `"}`)},
		es.EventData{Type: "B", ContentType: es.ContentTypeBinary, Metadata: []byte{0xff, 0x00}},
	)
	require.NoError(t, err)
	var recs []es.RecordedEvent
	for rec, err := range in.Unwrap().ReadStream(t.Context(), "order-1", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	append := in.span(t, "append order")
	assert.Equal(t, append.SpanContext().TraceID(), esotel.SpanContext(recs[0]).TraceID(),
		"a trace context carried over from a cause is replaced by the append's")
	assert.NotContains(t, string(recs[0].Metadata), parent)
	assert.Equal(t, []byte{0xff, 0x00}, recs[1].Metadata, "metadata that is not a JSON object is left alone")
	assert.False(t, esotel.SpanContext(recs[1]).IsValid())
	assert.False(t, esotel.SpanContext(es.RecordedEvent{}).IsValid())
	assert.Equal(t, t.Context(), esotel.Extract(t.Context(), recs[1]))
}

// sum returns the value of the counter name, by outcome if asked.
func sum(t *testing.T, rm metricdata.ResourceMetrics, name string) int64 {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				var n int64
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					n += dp.Value
				}
				return n
			}
		}
	}
	return 0
}

// durations returns the count of append durations by outcome.
func durations(t *testing.T, rm metricdata.ResourceMetrics) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "eventfold.store.append.duration" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				outcome, _ := dp.Attributes.Value(esotel.AttrOutcome)
				out[outcome.AsString()] += dp.Count
			}
		}
	}
	return out
}

func TestConflictCountsOnce(t *testing.T) {
	in := newInstrumented(t)
	ev := es.EventData{Type: "OrderPlaced", Data: []byte(`{}`)}
	_, err := in.Append(t.Context(), "order-7", es.NoStream, ev, ev)
	require.NoError(t, err)
	_, err = in.Append(t.Context(), "order-7", es.NoStream, es.EventData{Type: "OrderPlaced"})
	require.ErrorIs(t, err, es.ErrWrongExpectedVersion)
	_, err = in.Append(t.Context(), "", es.Any, ev)
	require.ErrorIs(t, err, es.ErrInvalidArgument)

	var rm metricdata.ResourceMetrics
	require.NoError(t, in.metrics.Collect(t.Context(), &rm))
	assert.Equal(t, int64(1), sum(t, rm, "eventfold.store.append.conflicts"))
	assert.Equal(t, int64(2), sum(t, rm, "eventfold.store.append.events"))
	assert.Equal(t, map[string]uint64{"ok": 1, "conflict": 1, "error": 1}, durations(t, rm))

	spans := in.spans.Ended()
	require.Len(t, spans, 3)
	conflict := spans[1]
	assert.Equal(t, "wrong_expected_version", attrs(conflict)["error.type"].AsString())
	require.NotEmpty(t, conflict.Events())
	var names []string
	for _, e := range conflict.Events() {
		names = append(names, e.Name)
	}
	assert.Contains(t, names, "wrong_expected_version")
	assert.Equal(t, "invalid_argument", attrs(spans[2])["error.type"].AsString())
}

func TestReadSpans(t *testing.T) {
	in := newInstrumented(t)
	for range 3 {
		_, err := in.Append(t.Context(), "order-1", es.Any, es.EventData{Type: "A"})
		require.NoError(t, err)
	}
	n := 0
	for _, err := range in.ReadStream(t.Context(), "order-1", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		n++
		if n == 2 {
			break // a read that stops early ends its span too
		}
	}
	span := in.span(t, "read_stream order")
	assert.Equal(t, int64(2), attrs(span)["db.response.returned_rows"].AsInt64())

	for _, err := range in.ReadStream(t.Context(), "order-2", es.ReadStreamOptions{}) {
		require.ErrorIs(t, err, es.ErrStreamNotFound)
	}
	var missing sdktrace.ReadOnlySpan
	for _, s := range in.spans.Ended() {
		if s.Name() == "read_stream order" && attrs(s)[esotel.AttrStream].AsString() == "order-2" {
			missing = s
		}
	}
	require.NotNil(t, missing)
	assert.Equal(t, "stream_not_found", attrs(missing)["error.type"].AsString())

	for range in.ReadAll(t.Context(), es.ReadAllOptions{}) {
	}
	assert.Equal(t, int64(3), attrs(in.span(t, "read_all $all"))["db.response.returned_rows"].AsInt64())

	_, err := in.DeleteStream(t.Context(), "order-1", es.Any)
	require.NoError(t, err)
	in.span(t, "delete_stream order")
	_, err = in.TombstoneStream(t.Context(), "order-1", es.Any)
	require.NoError(t, err)
	in.span(t, "tombstone_stream order")
}

func TestInvalidOptions(t *testing.T) {
	_, err := esotel.New(nil, esotel.WithTracerProvider(nil), esotel.WithMeterProvider(nil), esotel.WithSystem(""))
	require.ErrorIs(t, err, esotel.ErrInvalidOption)
	for _, want := range []string{"nil store", "nil tracer provider", "nil meter provider", "empty system name"} {
		assert.ErrorContains(t, err, want)
	}
}
