package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/example/orders/readmodel"
	"github.com/eventfold/eventfold/projection"
	"github.com/google/uuid"
)

// maxBody bounds request bodies.
const maxBody = 64 << 10

// PositionHeader carries the position of a command's events: a POST answers
// with it, and a GET that sends it back waits until the read model has
// applied it, so that callers read their own writes.
const PositionHeader = "Eventfold-Position"

// api is the HTTP API of the orders service.
type api struct {
	svc     *service
	queries *readmodel.Queries
	details readModel
	history readModel
	wait    time.Duration // how long a request waits for the read models
	probe   time.Duration // how long readiness waits for the event store
	logger  *slog.Logger
}

func newAPI(svc *service) *api {
	a := &api{svc: svc, queries: svc.app.queries, wait: 5 * time.Second, probe: time.Second, logger: svc.logger}
	for _, r := range svc.app.runners {
		switch r.Name() {
		case readmodel.DetailsName:
			a.details = r
		case readmodel.SummariesName:
			a.history = r
		}
	}
	return a
}

// routes returns the API's handler.
func (a *api) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The server span (traced) learns its route once routed.
			span := trace.SpanFromContext(r.Context())
			span.SetName(pattern)
			span.SetAttributes(semconv.HTTPRoute(pattern))
			h(w, r)
		}))
	}
	route("POST /orders", a.placeOrder)
	route("POST /orders/{id}/confirm", a.confirmOrder)
	route("POST /orders/{id}/ship", a.shipOrder)
	route("POST /orders/{id}/cancel", a.cancelOrder)
	route("GET /orders/{id}", a.getOrder)
	route("GET /customers/{id}/orders", a.customerOrders)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	if a.svc.metrics != nil {
		mux.Handle("GET /metrics", a.svc.metrics)
	}
	return traced(mux)
}

type placeRequest struct {
	OrderID    string       `json:"orderId"`
	CustomerID string       `json:"customerId"`
	Items      []order.Item `json:"items"`
}

func (a *api) placeOrder(w http.ResponseWriter, r *http.Request) {
	var req placeRequest
	if !a.decode(w, r, &req) {
		return
	}
	if req.OrderID == "" {
		req.OrderID = uuid.NewString()
	}
	a.command(w, r, http.StatusCreated, order.PlaceOrder{OrderID: req.OrderID, CustomerID: req.CustomerID, Items: req.Items, PlacedAt: a.svc.now().UTC()})
}

func (a *api) confirmOrder(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !a.decode(w, r, &req) {
		return
	}
	a.command(w, r, http.StatusOK, order.ConfirmOrder{OrderID: r.PathValue("id"), ConfirmedAt: a.svc.now().UTC()})
}

func (a *api) shipOrder(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TrackingNumber string `json:"trackingNumber"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	a.command(w, r, http.StatusOK, order.ShipOrder{OrderID: r.PathValue("id"), TrackingNumber: req.TrackingNumber, ShippedAt: a.svc.now().UTC()})
}

func (a *api) cancelOrder(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	a.command(w, r, http.StatusOK, order.CancelOrder{OrderID: r.PathValue("id"), Reason: req.Reason, CancelledAt: a.svc.now().UTC()})
}

// command sends cmd through the bus and answers with the order as the read
// model shows it once it has applied the command's events.
func (a *api) command(w http.ResponseWriter, r *http.Request, status int, cmd any) {
	ctx := es.WithCorrelationID(r.Context(), requestID(r))
	out, err := bus.Request[outcome](ctx, a.svc.bus, cmd)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !out.Position.IsZero() {
		w.Header().Set(PositionHeader, out.Position.String())
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", "/orders/"+out.OrderID)
	}
	detail, err := a.orderAt(ctx, out.OrderID, out.Position)
	if err != nil {
		// The command is done; the read model is late. Say what we know.
		a.logger.WarnContext(ctx, "the read model is late", "order", out.OrderID, "error", err)
		writeJSON(w, status, out)
		return
	}
	writeJSON(w, status, detail)
}

func (a *api) getOrder(w http.ResponseWriter, r *http.Request) {
	after, ok := a.position(w, r)
	if !ok {
		return
	}
	detail, err := a.orderAt(r.Context(), r.PathValue("id"), after)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, detail)
}

func (a *api) customerOrders(w http.ResponseWriter, r *http.Request) {
	after, ok := a.position(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.wait)
	defer cancel()
	if err := a.history.WaitFor(ctx, after); err != nil {
		a.fail(w, r, fmt.Errorf("%w: %w", errLate, err))
		return
	}
	orders, err := a.queries.CustomerOrders(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, orders)
}

// errLate means a read model did not apply a position in time.
var errLate = errors.New("the read model has not caught up yet; try again")

// orderAt reads an order once the details read model has applied after.
func (a *api) orderAt(ctx context.Context, id string, after es.Position) (readmodel.Detail, error) {
	ctx, cancel := context.WithTimeout(ctx, a.wait)
	defer cancel()
	if err := a.details.WaitFor(ctx, after); err != nil {
		return readmodel.Detail{}, fmt.Errorf("%w: %w", errLate, err)
	}
	return a.queries.Order(ctx, id)
}

// healthz answers liveness: 200 while the process serves HTTP.
func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is the body of a readyz answer.
type readiness struct {
	Ready bool `json:"ready"`
	// Checks holds the state of each part: "ok" for the event store,
	// "running" for the bus, the runner's state for the relay and each read
	// model, or what is wrong.
	Checks map[string]string `json:"checks"`
	// NotReady names the parts that are not ready, in a stable order.
	NotReady []string `json:"notReady,omitempty"`
}

// readyz answers readiness: 200 when the event store answers a cheap read
// within a.probe, the bus runs, every read model is live, and the relay is
// live or waits in standby while another replica relays; 503 otherwise, and from the start of a shutdown, with the parts
// that are not ready.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.probe)
	defer cancel()
	var res readiness
	res.Checks = make(map[string]string)
	check := func(part, state string, ok bool) {
		res.Checks[part] = state
		if !ok {
			res.NotReady = append(res.NotReady, part)
		}
	}
	if a.svc.stopping.Load() {
		check("service", "shutting down", false)
	}
	if err := ping(ctx, a.svc.app.store); err != nil {
		check("store", "error: "+err.Error(), false)
	} else {
		check("store", "ok", true)
	}
	select {
	case <-a.svc.bus.Running():
		check("bus", "running", true)
	default:
		check("bus", "starting", false)
	}
	for _, r := range a.svc.runners() {
		st, err := r.Status(ctx)
		switch {
		case err != nil:
			check(r.Name(), "error: "+err.Error(), false)
		case st.State == projection.StateFailed && st.Err != nil:
			check(r.Name(), string(st.State)+": "+st.Err.Error(), false)
		default:
			check(r.Name(), string(st.State), st.State == projection.StateLive || a.relaysElsewhere(r, st))
		}
	}
	res.Ready = len(res.NotReady) == 0
	code := http.StatusOK
	if !res.Ready {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, res)
}

// relaysElsewhere reports whether r is the relay, waiting for its lease
// while another replica relays: this replica is ready all the same.
func (a *api) relaysElsewhere(r runner, st projection.Status) bool {
	relay := a.svc.relay
	return relay != nil && r.Name() == relay.Name() &&
		(st.State == projection.StateStandby || st.State == projection.StateElsewhere)
}

// ping reads the newest event of store, to see that it answers before ctx
// ends. It returns when ctx ends even if the read does not (a store that
// ignores deadlines leaves the read behind).
func ping(ctx context.Context, store es.Store) error {
	done := make(chan error, 1)
	go func() {
		_, _, err := es.Head(ctx, store)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within the probe's deadline: %w", ctx.Err())
	}
}

// position reads the position a GET waits for, from the PositionHeader or
// the "after" query parameter.
func (a *api) position(w http.ResponseWriter, r *http.Request) (es.Position, bool) {
	s := r.Header.Get(PositionHeader)
	if q := r.URL.Query().Get("after"); q != "" {
		s = q
	}
	if s == "" {
		return es.Start, true
	}
	p, err := es.ParsePosition(s)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return es.Position{}, false
	}
	return p, true
}

// decode reads a JSON body strictly: one object, known fields only, at most
// maxBody bytes. An empty body is an empty object.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return true // no body
	}
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON object")
	}
	if err == nil {
		if _, extra := dec.Token(); !errors.Is(extra, io.EOF) {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("the body is over %d bytes", maxBody))
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

// fail answers with the status that err calls for.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status == http.StatusInternalServerError {
		a.logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeError(w, status, err.Error())
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, order.ErrInvalidCommand), errors.Is(err, es.ErrInvalidArgument):
		return http.StatusBadRequest
	case errors.Is(err, aggregate.ErrNotFound), errors.Is(err, readmodel.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, order.ErrInvalidTransition), errors.Is(err, aggregate.ErrAlreadyExists), errors.Is(err, es.ErrWrongExpectedVersion):
		return http.StatusConflict
	case errors.Is(err, errLate), errors.Is(err, context.DeadlineExceeded), errors.Is(err, es.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 {
		return id
	}
	return uuid.NewString()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
