package esotel_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/memstore"
)

func TestAppendStreamsSpanAndTraceContext(t *testing.T) {
	in := newInstrumented(t)
	ctx, command := in.tracer.Start(t.Context(), "command")
	ev := func() es.EventData { return es.EventData{Type: "Moved", Data: []byte(`{}`)} }
	res, err := es.AppendStreams(ctx, in.Store,
		es.StreamAppend{Stream: "account-1", Expected: es.NoStream, Events: []es.EventData{ev(), ev()}},
		es.StreamAppend{Stream: "account-2", Expected: es.Any, Events: []es.EventData{ev()}},
	)
	require.NoError(t, err)
	require.Len(t, res, 2)
	_, err = in.AppendStreams(ctx,
		es.StreamAppend{Stream: "account-1", Expected: es.Exact(1), Events: []es.EventData{ev()}},
		es.StreamAppend{Stream: "ledger", Expected: es.Any, Events: []es.EventData{ev()}},
	)
	require.NoError(t, err)
	command.End()

	span := in.span(t, "append_streams account")
	assert.Equal(t, command.SpanContext().SpanID(), span.Parent().SpanID(), "a child of the command's span")
	a := attrs(span)
	assert.Equal(t, "memory", a["db.system.name"].AsString())
	assert.Equal(t, "append_streams", a["db.operation.name"].AsString())
	assert.Equal(t, int64(3), a["db.operation.batch.size"].AsInt64(), "the events of all parts")
	assert.Equal(t, int64(2), a[esotel.AttrParts].AsInt64())
	assert.Equal(t, []string{"account-1", "account-2"}, a[esotel.AttrStreams].AsStringSlice())
	in.span(t, "append_streams") // streams of several categories

	for _, stream := range []string{"account-1", "account-2"} {
		for rec, err := range in.Unwrap().ReadStream(t.Context(), stream, es.ReadStreamOptions{}) {
			require.NoError(t, err)
			if rec.Revision > 1 {
				continue // the second multi-stream append
			}
			sc := esotel.SpanContext(rec)
			assert.Equal(t, span.SpanContext().TraceID(), sc.TraceID(), "%s@%d carries the append's trace", stream, rec.Revision)
			assert.Equal(t, span.SpanContext().SpanID(), sc.SpanID(), "%s@%d carries the append's span", stream, rec.Revision)
		}
	}

	var rm metricdata.ResourceMetrics
	require.NoError(t, in.metrics.Collect(t.Context(), &rm))
	assert.Equal(t, int64(5), sum(t, rm, "eventfold.store.append.events"))
	assert.Equal(t, map[string]uint64{"ok": 2}, durations(t, rm))
}

func TestAppendStreamsConflict(t *testing.T) {
	in := newInstrumented(t)
	ev := es.EventData{Type: "Moved", Data: []byte(`{}`)}
	_, err := in.AppendStreams(t.Context(),
		es.StreamAppend{Stream: "account-1", Expected: es.Exact(3), Events: []es.EventData{ev}},
		es.StreamAppend{Stream: "account-2", Expected: es.Any, Events: []es.EventData{ev}},
	)
	require.ErrorIs(t, err, es.ErrWrongExpectedVersion)
	_, err = in.AppendStreams(t.Context())
	require.ErrorIs(t, err, es.ErrInvalidArgument)

	var rm metricdata.ResourceMetrics
	require.NoError(t, in.metrics.Collect(t.Context(), &rm))
	assert.Equal(t, int64(1), sum(t, rm, "eventfold.store.append.conflicts"))
	assert.Equal(t, map[string]uint64{"conflict": 1, "error": 1}, durations(t, rm))
	spans := in.spans.Ended()
	require.Len(t, spans, 2)
	assert.Equal(t, "wrong_expected_version", attrs(spans[0])["error.type"].AsString())
	assert.Equal(t, "invalid_argument", attrs(spans[1])["error.type"].AsString())
}

// plainStore is a store without multi-stream appends.
type plainStore struct{ es.Store }

func TestAppendStreamsUnsupported(t *testing.T) {
	inner := memstore.MustNew()
	s, err := esotel.New(plainStore{inner})
	require.NoError(t, err)
	_, err = es.AppendStreams(t.Context(), s,
		es.StreamAppend{Stream: "account-1", Expected: es.Any, Events: []es.EventData{{Type: "Moved"}}})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	for _, err := range inner.ReadAll(t.Context(), es.ReadAllOptions{}) {
		require.NoError(t, err)
		t.Fatal("an unsupported multi-stream append wrote an event")
	}
}
