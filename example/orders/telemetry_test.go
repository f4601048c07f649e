package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold/example/orders/readmodel"
)

// One order, traced end to end: the HTTP request, the command on the bus,
// the aggregate and the store, the stock check that reacts to the event
// and the command it sends, all in one trace; the relay's and the read
// models' batches linked to it. The metrics are served on /metrics.
func TestTraceOfAnOrder(t *testing.T) {
	spans, tel := recordTelemetry(t)
	_, svc, _ := startService(t, true)
	svc.metrics = tel.metrics
	srv := httptest.NewServer(newAPI(svc).routes())
	t.Cleanup(srv.Close)

	tree := traceOneOrder(t, srv, spans)
	t.Log("\n" + tree)

	metrics := httpGet(t, srv.URL+"/metrics")
	for _, want := range []string{
		`eventfold_store_append_events_total{db_system_name="memory"`,
		`eventfold_bus_handler_duration_seconds_count{eventfold_message_kind="command",eventfold_message_type="PlaceOrder",eventfold_outcome="ok"`,
		`eventfold_projection_events_total{eventfold_projection="order-details"`,
		`eventfold_projection_lag_events{eventfold_projection="relay"`,
		`eventfold_projection_state{eventfold_projection="relay",eventfold_projection_state="live"`,
	} {
		assert.Contains(t, metrics, want)
	}
}

// The same trace with the events in PostgreSQL and the bus on NATS
// JetStream, for real: the stock check, in its consumer, continues the
// command's trace from the message's metadata, and the batches link to it.
func TestTraceOfAnOrderOnPostgreSQLAndNATS(t *testing.T) {
	pg := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if pg == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: no PostgreSQL for the trace test")
	}
	natsURL := os.Getenv("EVENTFOLD_TEST_NATS")
	if natsURL == "" {
		t.Skip("EVENTFOLD_TEST_NATS is not set: no NATS JetStream for the trace test")
	}
	spans, _ := recordTelemetry(t)
	a := openTestApp(t, infra{postgres: postgresSchema(t, pg)}, slog.New(slog.DiscardHandler))
	prefix := "orders-" + shortID() + "-"
	t.Cleanup(func() { deleteStreams(t, natsURL, prefix) })
	srv, _ := startServiceOn(t, a, serviceConfig{nats: natsURL, topicPrefix: prefix, autoConfirm: true})
	tree := traceOneOrder(t, srv, spans)
	t.Log("\n" + tree)
	assert.Contains(t, tree, "append order  [client]")
}

// recordTelemetry installs the service's telemetry, with a span recorder,
// until the test ends.
func recordTelemetry(t *testing.T) (*tracetest.SpanRecorder, *telemetry) {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	prevTP, prevMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	tel, err := setupTelemetry(t.Context(), "", spans)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, tel.shutdown(context.Background()))
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
	})
	return spans, tel
}

// traceOneOrder places order 42 on srv, whose stock check confirms it,
// waits until its trace is complete (both appends applied by the read
// models and published by the relay), checks its shape and returns it
// drawn.
func traceOneOrder(t *testing.T, srv *httptest.Server, spans *tracetest.SpanRecorder) string {
	t.Helper()
	res := call(t, srv, "POST", "/orders", placeBody, "X-Request-Id", "req-trace")
	require.Equal(t, http.StatusCreated, res.status, res.body)

	var tree string
	deadline := time.Now().Add(20 * time.Second)
	for {
		ended := spans.Ended()
		for _, s := range ended {
			if s.Name() == "POST /orders" {
				tree = renderTrace(s.SpanContext().TraceID(), ended)
			}
		}
		// The read models' and the relay's batches link to the trace: one
		// batch each at least (the order's two events may share one).
		if strings.Contains(tree, "process ConfirmOrder") && strings.Contains(tree, "linked from process "+readmodel.DetailsName) &&
			strings.Contains(tree, "linked from process "+readmodel.SummariesName) && strings.Contains(tree, "linked from process relay") {
			break
		}
		require.True(t, time.Now().Before(deadline), "the trace did not complete:\n%s", tree)
		time.Sleep(5 * time.Millisecond)
	}
	for _, want := range []string{
		"POST /orders", "send PlaceOrder", "process PlaceOrder", "create order", "append order",
		"process OrderPlaced stock-check", "send ConfirmOrder", "process ConfirmOrder", "update order",
		"linked from process relay", "linked from process " + readmodel.SummariesName,
	} {
		assert.Contains(t, tree, want)
	}
	return tree
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	return string(b)
}

// renderTrace draws the spans of trace id as a tree, children in the
// order they started, with the spans of other traces that link to each.
func renderTrace(id trace.TraceID, spans []sdktrace.ReadOnlySpan) string {
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	linked := map[trace.SpanID][]string{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		for _, l := range s.Links() {
			if l.SpanContext.TraceID() == id && s.SpanContext().TraceID() != id {
				linked[l.SpanContext.SpanID()] = append(linked[l.SpanContext.SpanID()], s.Name())
			}
		}
		if s.SpanContext().TraceID() != id {
			continue
		}
		if s.Parent().IsValid() {
			children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var draw func(s sdktrace.ReadOnlySpan, prefix string, last bool, top bool)
	draw = func(s sdktrace.ReadOnlySpan, prefix string, last, top bool) {
		branch, next := "├─ ", "│  "
		if last {
			branch, next = "└─ ", "   "
		}
		if top {
			branch, next = "", ""
		}
		fmt.Fprintf(&b, "%s%s%s  [%s]\n", prefix, branch, s.Name(), s.SpanKind())
		kids := children[s.SpanContext().SpanID()]
		slices.SortFunc(kids, func(x, y sdktrace.ReadOnlySpan) int { return x.StartTime().Compare(y.StartTime()) })
		links := linked[s.SpanContext().SpanID()]
		slices.Sort(links)
		for i, l := range links {
			mark := "├┄ "
			if i == len(links)-1 && len(kids) == 0 {
				mark = "└┄ "
			}
			fmt.Fprintf(&b, "%s%s%slinked from %s\n", prefix, next, mark, l)
		}
		for i, k := range kids {
			draw(k, prefix+next, i == len(kids)-1, false)
		}
	}
	for _, r := range roots {
		draw(r, "", true, true)
	}
	return b.String()
}
