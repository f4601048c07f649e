// Package otelx holds what eventfold's instrumented packages share about
// OpenTelemetry.
package otelx

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// globalPkg is the package of OpenTelemetry's default global provider,
// which delegates to the provider the application installs, and makes
// non-recording spans until it does.
const globalPkg = "go.opentelemetry.io/otel/internal/global"

// Tracer is the tracer of an instrumented component: of the provider it
// was given, or else of the global provider at the time of each span.
type Tracer struct {
	tp     trace.TracerProvider // nil: the global one
	scope  string
	cached atomic.Pointer[cachedTracer]
}

type cachedTracer struct {
	tp trace.TracerProvider
	t  trace.Tracer
}

// NewTracer returns the tracer of scope on tp, or, if tp is nil, on the
// global provider.
func NewTracer(tp trace.TracerProvider, scope string) *Tracer {
	return &Tracer{tp: tp, scope: scope}
}

// Get returns the tracer to start a span with, or nil when the global
// provider is OpenTelemetry's default, that is when the application
// installed no SDK: the caller then skips its span entirely, which costs
// nothing, where the default provider's non-recording spans cost a few
// allocations each.
func (t *Tracer) Get() trace.Tracer {
	tp := t.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
		if ty := reflect.TypeOf(tp); ty.Kind() == reflect.Pointer && ty.Elem().PkgPath() == globalPkg {
			return nil
		}
	}
	if c := t.cached.Load(); c != nil && c.tp == tp {
		return c.t
	}
	tr := tp.Tracer(t.scope)
	t.cached.Store(&cachedTracer{tp: tp, t: tr})
	return tr
}

// TracerOption is the option WithTracerProvider of an instrumented package
// whose options are func(*C) error: it sets tp with set, and fails with
// invalid for a nil tp.
func TracerOption[C any](tp trace.TracerProvider, invalid error, set func(*C, trace.TracerProvider)) func(*C) error {
	return func(c *C) error {
		if tp == nil {
			return fmt.Errorf("%w: nil tracer provider", invalid)
		}
		set(c, tp)
		return nil
	}
}

// MeterOption is the option WithMeterProvider of an instrumented package,
// as TracerOption.
func MeterOption[C any](mp metric.MeterProvider, invalid error, set func(*C, metric.MeterProvider)) func(*C) error {
	return func(c *C) error {
		if mp == nil {
			return fmt.Errorf("%w: nil meter provider", invalid)
		}
		set(c, mp)
		return nil
	}
}

// NoSpan is the span of work that is not traced: it records nothing, and
// ending it ends nothing (unlike the span a context may carry, which is
// its owner's to end).
var NoSpan = trace.SpanFromContext(context.Background())

// Fail records err on span, as its error and status, if span records.
func Fail(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// End records err on span (see Fail) and ends it.
func End(span trace.Span, err error) {
	Fail(span, err)
	span.End()
}
