package bus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/eventfold/eventfold/bus"
)

// The handler metric counts the messages handled by outcome: ok, or the
// kind of the error.
func TestHandlerMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()), bus.WithMeterProvider(mp),
		bus.WithErrors(ErrInsufficientFunds))
	require.NoError(t, err)
	require.NoError(t, bus.HandleRequest(b, func(_ context.Context, cmd Withdraw) (Balance, error) {
		if cmd.Amount > 10 {
			return Balance{}, ErrInsufficientFunds
		}
		if cmd.Amount < 0 {
			return Balance{}, errors.New("broken")
		}
		return Balance{}, nil
	}))
	stop, done := runUntil(t, b)
	defer func() { stop(); <-done }()
	for _, amount := range []int{5, 5, 50, -1} {
		_, _ = bus.Request[Balance](t.Context(), b, Withdraw{ID: "1", Amount: amount})
	}

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	counts := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "eventfold.bus.handler.duration" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				outcome, _ := dp.Attributes.Value(bus.AttrOutcome)
				typ, _ := dp.Attributes.Value(bus.AttrType)
				counts[typ.AsString()+" "+outcome.AsString()] += dp.Count
			}
		}
	}
	assert.Equal(t, map[string]uint64{"Withdraw ok": 2, "Withdraw domain": 1, "Withdraw other": 1}, counts)
}
