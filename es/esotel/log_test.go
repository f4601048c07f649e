package esotel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"testing/slogtest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/eventfold/eventfold/es/esotel"
)

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(esotel.LogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "orders").WithGroup("g")
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(t.Context(), "command")
	defer span.End()

	logger.InfoContext(ctx, "placed", "order", "o-1")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	g := rec["g"].(map[string]any)
	assert.Equal(t, span.SpanContext().TraceID().String(), g[esotel.LogTraceID])
	assert.Equal(t, span.SpanContext().SpanID().String(), g[esotel.LogSpanID])
	assert.Equal(t, "orders", rec["service"])

	buf.Reset()
	logger.InfoContext(t.Context(), "no span")
	assert.NotContains(t, buf.String(), esotel.LogTraceID)
	h := esotel.LogHandler(slog.NewTextHandler(&buf, nil))
	assert.Equal(t, h, esotel.LogHandler(h), "wrapping twice adds the IDs once")
}

// The wrapper is a well-behaved slog.Handler.
func TestLogHandlerSlogtest(t *testing.T) {
	var buf bytes.Buffer
	h := esotel.LogHandler(slog.NewJSONHandler(&buf, nil))
	results := func() []map[string]any {
		var out []map[string]any
		for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
			m := map[string]any{}
			require.NoError(t, json.Unmarshal(line, &m))
			out = append(out, m)
		}
		return out
	}
	require.NoError(t, slogtest.TestHandler(h, results))
}
