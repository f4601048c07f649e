package aggregate_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/memstore"
)

// An update that meets a concurrent writer once is one "update" span with
// two attempts (load, decide, append each), a conflict event, and one
// retry counted; the store's spans (es/esotel) are its children.
func TestTelemetry(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	raw := memstore.MustNew()
	store, err := esotel.New(raw, esotel.WithTracerProvider(tp), esotel.WithMeterProvider(mp), esotel.WithSystem("memory"))
	require.NoError(t, err)
	accounts, err := aggregate.New(store, accountTypes(), accountDef, aggregate.WithTracerProvider(tp), aggregate.WithMeterProvider(mp))
	require.NoError(t, err)
	ctx := t.Context()
	_, err = accounts.Create(ctx, "1", open("ada"))
	require.NoError(t, err)

	interfered := false
	res, err := accounts.Update(ctx, "1", func(a Account) ([]Event, error) {
		if !interfered { // another writer gets there first, once
			interfered = true
			_, err := accounts.Update(context.Background(), "1", deposit(5))
			require.NoError(t, err)
		}
		return deposit(10)(a)
	})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Attempts)

	var update sdktrace.ReadOnlySpan
	children := map[string]int{}
	for _, s := range spans.Ended() {
		if s.Name() == "update account" && len(s.Events()) > 0 {
			require.Nil(t, update, "one update conflicted")
			update = s
		}
	}
	require.NotNil(t, update, "the update that conflicted")
	for _, s := range spans.Ended() {
		if s.Parent().SpanID() == update.SpanContext().SpanID() {
			children[s.Name()]++
		}
	}
	assert.Equal(t, map[string]int{"load account": 2, "decide account": 2, "append account": 2}, children)
	a := map[attribute.Key]attribute.Value{}
	for _, kv := range update.Attributes() {
		a[kv.Key] = kv.Value
	}
	assert.Equal(t, int64(2), a[aggregate.AttrAttempts].AsInt64())
	assert.Equal(t, "account", a[aggregate.AttrCategory].AsString())
	assert.Equal(t, "1", a[aggregate.AttrID].AsString())
	require.Len(t, update.Events(), 1)
	assert.Equal(t, "conflict", update.Events()[0].Name)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	retries := int64(-1)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "eventfold.aggregate.retries" {
				retries = 0
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					retries += dp.Value
				}
			}
		}
	}
	assert.Equal(t, int64(1), retries, "a conflict counts once")

	// The events carry the trace of the append that wrote them.
	last, ok, err := es.LastEvent(ctx, raw, "account-1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, update.SpanContext().TraceID(), esotel.SpanContext(last).TraceID())
}

func TestTelemetryOptions(t *testing.T) {
	_, err := aggregate.New(memstore.MustNew(), accountTypes(), accountDef, aggregate.WithTracerProvider(nil), aggregate.WithMeterProvider(nil))
	require.ErrorIs(t, err, aggregate.ErrInvalidOption)
	assert.ErrorContains(t, err, "nil tracer provider")
	assert.ErrorContains(t, err, "nil meter provider")
}
