package esotel

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Keys of the trace and span IDs that [LogHandler] adds to log records.
const (
	LogTraceID = "trace_id"
	LogSpanID  = "span_id"
)

// LogHandler returns a handler that adds the IDs of the span in a record's
// context to the record ([LogTraceID], [LogSpanID], as hexadecimal
// strings), and passes it to h, so that logs and traces join: every record
// logged with a context inside a traced operation (logger.InfoContext(ctx,
// …)) names its trace. Records without a span in their context pass
// unchanged.
//
//	logger := slog.New(esotel.LogHandler(slog.NewJSONHandler(os.Stderr, nil)))
func LogHandler(h slog.Handler) slog.Handler {
	if t, ok := h.(traceHandler); ok {
		return t // already wrapped
	}
	return traceHandler{h}
}

type traceHandler struct{ slog.Handler }

// Handle implements [slog.Handler].
func (t traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String(LogTraceID, sc.TraceID().String()), slog.String(LogSpanID, sc.SpanID().String()))
	}
	return t.Handler.Handle(ctx, r)
}

// WithAttrs implements [slog.Handler].
func (t traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{t.Handler.WithAttrs(attrs)}
}

// WithGroup implements [slog.Handler].
func (t traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{t.Handler.WithGroup(name)}
}
