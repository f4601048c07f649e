package otelx

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestTracer(t *testing.T) {
	global := NewTracer(nil, "test")
	assert.Nil(t, global.Get(), "no SDK installed: no tracer")

	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	given := NewTracer(tp, "test")
	assert.NotNil(t, given.Get())
	assert.Same(t, given.Get(), given.Get(), "cached")

	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	assert.NotNil(t, global.Get(), "an SDK installed globally later is used")
}
