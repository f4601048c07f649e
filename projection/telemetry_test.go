package projection_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// A batch is a span "process {projection}" linked to the traces of the
// commands that caused its events; the runner counts the events it
// applied and the batches it tried again.
func TestTelemetry(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	store, err := esotel.New(memstore.MustNew(), esotel.WithTracerProvider(tp))
	require.NoError(t, err)

	// Two commands, each in its own trace, append the events.
	var commands []string
	var last es.Position
	for _, stream := range []string{"order-1", "order-2"} {
		ctx, span := tp.Tracer("test").Start(t.Context(), "command "+stream)
		res, err := store.Append(ctx, stream, es.NoStream, es.EventData{Type: "Placed", Data: []byte(`{}`)})
		require.NoError(t, err)
		span.End()
		commands = append(commands, span.SpanContext().TraceID().String())
		last = res.Position
	}

	failed := false
	p := projection.Projection[projection.NoTx]{Name: "orders", Handle: func(context.Context, projection.NoTx, projection.Batch) error {
		if !failed {
			failed = true
			return errors.New("read model away")
		}
		return nil
	}}
	r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, p,
		projection.WithTracerProvider(tp), projection.WithMeterProvider(mp), projection.WithRetry(3, 1),
		projection.WithBatch(10, 1))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	require.NoError(t, r.WaitFor(t.Context(), last))
	cancel()
	<-done

	var linked []string
	var batches int
	for _, s := range spans.Ended() {
		if s.Name() != "process orders" {
			continue
		}
		batches++
		a := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes() {
			a[kv.Key] = kv.Value
		}
		assert.Equal(t, "orders", a[projection.AttrProjection].AsString())
		assert.NotEmpty(t, a[projection.AttrCheckpointTo].AsString())
		for _, l := range s.Links() {
			linked = append(linked, l.SpanContext.TraceID().String())
		}
	}
	require.NotZero(t, batches)
	assert.ElementsMatch(t, commands, linked, "each batch links the traces of its events' commands")

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	counts := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					counts[m.Name] += dp.Value
				}
			}
		}
	}
	assert.Equal(t, int64(2), counts["eventfold.projection.events"])
	assert.Equal(t, int64(1), counts["eventfold.projection.retries"])
}

// gauge returns the value of the int64 gauge name for the data point that
// has attribute key = value (any if key is empty), and whether there is one.
func gauge(t *testing.T, reader *sdkmetric.ManualReader, name string, key attribute.Key, value string) (int64, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				if v, ok := dp.Attributes.Value(key); key == "" || ok && v.AsString() == value {
					return dp.Value, true
				}
			}
		}
	}
	return 0, false
}

// The lag goes up while a batch is held, and to zero once it is applied;
// the state gauge says which state the runner is in; a runner that is not
// running is not measured.
func TestLagMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	store := memstore.MustNew()
	gate := make(chan struct{})
	entered := make(chan struct{}, 100)
	p := projection.Projection[projection.NoTx]{Name: "held", Handle: func(context.Context, projection.NoTx, projection.Batch) error {
		entered <- struct{}{}
		<-gate
		return nil
	}}
	r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, p, projection.WithMeterProvider(mp), projection.WithBatch(100, 1))
	require.NoError(t, err)
	var last es.Position
	for range 5 {
		res, err := store.Append(t.Context(), "order-1", es.Any, es.EventData{Type: "E", Data: []byte(`{}`)})
		require.NoError(t, err)
		last = res.Position
	}
	_, measured := gauge(t, reader, "eventfold.projection.lag.events", "", "")
	assert.False(t, measured, "a runner that does not run is not measured")

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-entered
	lag, ok := gauge(t, reader, "eventfold.projection.lag.events", projection.AttrProjection, "held")
	require.True(t, ok)
	assert.Equal(t, int64(5), lag, "nothing applied yet")
	close(gate)
	require.NoError(t, r.WaitFor(t.Context(), last))
	lag, _ = gauge(t, reader, "eventfold.projection.lag.events", projection.AttrProjection, "held")
	assert.Zero(t, lag, "caught up")
	// The checkpoint reaches the position before the runner says it is
	// live (after its subscription caught up): poll with a deadline.
	require.Eventually(t, func() bool {
		live, ok := gauge(t, reader, "eventfold.projection.state", projection.AttrState, "live")
		return ok && live == 1
	}, 5*time.Second, time.Millisecond, "the state gauge says live")
	cancel()
	require.NoError(t, <-done)
	_, measured = gauge(t, reader, "eventfold.projection.lag.events", "", "")
	assert.False(t, measured, "a runner that stopped is no longer measured")
}

func TestPoisonMetric(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	store := memstore.MustNew()
	_, err := store.Append(t.Context(), "order-1", es.Any, es.EventData{Type: "E", Data: []byte(`{}`)})
	require.NoError(t, err)
	p := projection.Projection[projection.NoTx]{Name: "poisoned", Handle: func(context.Context, projection.NoTx, projection.Batch) error {
		return errors.New("cannot apply")
	}}
	r, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, p, projection.WithMeterProvider(mp), projection.WithRetry(1, 1))
	require.NoError(t, err)
	var perr *projection.PoisonError
	require.ErrorAs(t, r.Run(t.Context()), &perr)
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	var poison int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "eventfold.projection.poison" {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					poison += dp.Value
				}
			}
		}
	}
	assert.Equal(t, int64(1), poison)
}
