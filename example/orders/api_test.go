package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/eventfold/eventfold/es/esdbtest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startService runs the service (bus, relay, process manager, read models)
// on memstore, with its HTTP API on a test server.
func startService(t *testing.T, autoConfirm bool) (*httptest.Server, *service, *memstore.Store) {
	t.Helper()
	store := memstore.MustNew()
	srv, svc := startServiceOn(t, testApp(t, store), serviceConfig{autoConfirm: autoConfirm})
	return srv, svc, store
}

// startServiceOn runs the service on a with its HTTP API on a test server.
func startServiceOn(t *testing.T, a *app, cfg serviceConfig) (*httptest.Server, *service) {
	t.Helper()
	svc, err := newService(t.Context(), a, cfg)
	require.NoError(t, err)
	clock := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	svc.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Minute)
		return clock
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.run(ctx) }()
	waitLive(t, svc)
	srv := httptest.NewServer(newAPI(svc).routes())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		require.NoError(t, <-done)
	})
	return srv, svc
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	list   []any
}

func call(t *testing.T, srv *httptest.Server, method, path string, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var raw bytes.Buffer
	_, err = raw.ReadFrom(res.Body)
	require.NoError(t, err)
	out := response{status: res.StatusCode, header: res.Header}
	if strings.HasPrefix(strings.TrimSpace(raw.String()), "[") {
		require.NoError(t, json.Unmarshal(raw.Bytes(), &out.list), raw.String())
	} else {
		require.NoError(t, json.Unmarshal(raw.Bytes(), &out.body), raw.String())
	}
	return out
}

const placeBody = `{"orderId":"42","customerId":"alice","items":[{"productId":"keyboard","quantity":1,"unitPrice":4990},{"productId":"mouse","quantity":2,"unitPrice":1990}]}`

func TestAPIOrderLifecycle(t *testing.T) {
	srv, svc, _ := startService(t, false)

	res := call(t, srv, "POST", "/orders", placeBody, "X-Request-Id", "req-1")
	require.Equal(t, http.StatusCreated, res.status, res.body)
	assert.Equal(t, "/orders/42", res.header.Get("Location"))
	assert.NotEmpty(t, res.header.Get(PositionHeader))
	assert.Equal(t, "pending", res.body["status"])
	assert.Equal(t, float64(8970), res.body["subtotal"])

	res = call(t, srv, "POST", "/orders/42/confirm", ``)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Equal(t, "confirmed", res.body["status"])

	res = call(t, srv, "POST", "/orders/42/ship", `{"trackingNumber":"1Z-42"}`)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Equal(t, "shipped", res.body["status"])
	assert.Equal(t, "1Z-42", res.body["trackingNumber"])
	assert.Len(t, res.body["timeline"], 3)
	pos := res.header.Get(PositionHeader)

	res = call(t, srv, "POST", "/orders/42/cancel", `{"reason":"too late"}`)
	assert.Equal(t, http.StatusConflict, res.status)
	assert.Contains(t, res.body["error"], "cannot cancel order 42: it is shipped")

	res = call(t, srv, "GET", "/orders/42", ``, PositionHeader, pos)
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, "shipped", res.body["status"])

	res = call(t, srv, "GET", "/customers/alice/orders?after="+pos, ``)
	require.Equal(t, http.StatusOK, res.status)
	require.Len(t, res.list, 1)
	assert.Equal(t, "shipped", res.list[0].(map[string]any)["status"])

	require.Eventually(t, func() bool { return svc.notified.Load() == 1 }, 5*time.Second, time.Millisecond,
		"the notification handler heard of the shipment through the relay")
}

func TestAPIBadInput(t *testing.T) {
	srv, _, _ := startService(t, false)
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		message                  string
	}{
		{"malformed JSON", "POST", "/orders", `{"customerId":`, 400, "invalid JSON body"},
		{"unknown field", "POST", "/orders", `{"customerId":"a","colour":"red"}`, 400, `unknown field "colour"`},
		{"two objects", "POST", "/orders", `{} {}`, 400, "unexpected data after the JSON object"},
		{"wrong type", "POST", "/orders", `{"customerId":"a","items":[{"productId":"p","quantity":1.5,"unitPrice":1}]}`, 400, "invalid JSON body"},
		{"oversized body", "POST", "/orders", `{"customerId":"` + strings.Repeat("a", maxBody) + `"}`, 400, "the body is over"},
		{"missing customer", "POST", "/orders", `{"items":[{"productId":"p","quantity":1,"unitPrice":1}]}`, 400, "customer ID"},
		{"no items", "POST", "/orders", `{"customerId":"a"}`, 400, "at least one item"},
		{"zero quantity", "POST", "/orders", `{"customerId":"a","items":[{"productId":"p","quantity":0,"unitPrice":1}]}`, 400, "quantity must be positive"},
		{"negative price", "POST", "/orders", `{"customerId":"a","items":[{"productId":"p","quantity":1,"unitPrice":-5}]}`, 400, "price"},
		{"unknown order", "POST", "/orders/nope/confirm", ``, 404, "not found"},
		{"unknown order read", "GET", "/orders/nope", ``, 404, "not found"},
		{"bad position", "GET", "/orders/42?after=yesterday", ``, 400, "position"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, srv, tt.method, tt.path, tt.body)
			assert.Equal(t, tt.status, res.status, res.body)
			assert.Contains(t, res.body["error"], tt.message)
		})
	}

	res := call(t, srv, "POST", "/orders", placeBody)
	require.Equal(t, http.StatusCreated, res.status)
	res = call(t, srv, "POST", "/orders", placeBody)
	assert.Equal(t, http.StatusConflict, res.status, "placing the same order twice")
	res = call(t, srv, "POST", "/orders/42/ship", `{}`)
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.Contains(t, res.body["error"], "tracking number")
}

func TestProcessManagerConfirmsOrdersInStock(t *testing.T) {
	srv, _, store := startService(t, true)
	res := call(t, srv, "POST", "/orders", placeBody, "X-Request-Id", "req-7")
	require.Equal(t, http.StatusCreated, res.status, res.body)
	backordered := `{"orderId":"43","customerId":"bob","items":[{"productId":"hoverboard","quantity":1,"unitPrice":99900}]}`
	require.Equal(t, http.StatusCreated, call(t, srv, "POST", "/orders", backordered).status)

	require.Eventually(t, func() bool {
		res := call(t, srv, "GET", "/orders/42", ``)
		return res.body["status"] == "confirmed"
	}, 10*time.Second, 5*time.Millisecond, "the stock check confirms the order through the bus")

	// The whole chain shares the request's correlation ID; the Confirmed
	// event was caused by the ConfirmOrder command that the OrderPlaced
	// event caused.
	var events []es.RecordedEvent
	for ev, err := range store.ReadStream(t.Context(), "order-42", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		events = append(events, ev)
	}
	require.Len(t, events, 2)
	placed, err := es.ParseMetadata(events[0].Metadata)
	require.NoError(t, err)
	confirmed, err := es.ParseMetadata(events[1].Metadata)
	require.NoError(t, err)
	assert.Equal(t, "req-7", placed.CorrelationID)
	assert.Equal(t, "req-7", confirmed.CorrelationID)
	assert.NotEqual(t, placed.CausationID, confirmed.CausationID)
	assert.NotEqual(t, events[0].ID.String(), confirmed.CausationID, "the command in between is the cause")

	res = call(t, srv, "GET", "/orders/43", ``)
	assert.Equal(t, string(order.StatusPending), res.body["status"], "a product not in stock waits")
}

// TestServiceOnPostgreSQLAndNATS runs the service with its events and read
// models in PostgreSQL and its bus on NATS JetStream.
func TestServiceOnPostgreSQLAndNATS(t *testing.T) {
	pg := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if pg == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: no PostgreSQL for the service test")
	}
	natsURL := os.Getenv("EVENTFOLD_TEST_NATS")
	if natsURL == "" {
		t.Skip("EVENTFOLD_TEST_NATS is not set: no NATS JetStream for the service test")
	}
	a := openTestApp(t, infra{postgres: postgresSchema(t, pg)}, slog.New(slog.DiscardHandler))
	prefix := "orders-" + shortID() + "-"
	t.Cleanup(func() { deleteStreams(t, natsURL, prefix) })
	srv, _ := startServiceOn(t, a, serviceConfig{nats: natsURL, topicPrefix: prefix, autoConfirm: true})
	res := call(t, srv, "POST", "/orders", placeBody, "X-Request-Id", "req-pg")
	require.Equal(t, http.StatusCreated, res.status, res.body)
	require.Eventually(t, func() bool {
		return call(t, srv, "GET", "/orders/42", ``).body["status"] == "confirmed"
	}, 20*time.Second, 10*time.Millisecond, "the stock check confirms the order over NATS")
	res = call(t, srv, "POST", "/orders/42/ship", `{"trackingNumber":"1Z"}`)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.Equal(t, "*sqlstore.Store", fmt.Sprintf("%T", unwrapped(a.store)))
}

// deleteStreams deletes the JetStream streams of the topics with prefix.
func deleteStreams(t testing.TB, url, prefix string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return
	}
	for name := range js.StreamNames() {
		if strings.HasPrefix(name, prefix) {
			_ = js.DeleteStream(name)
		}
	}
}

// TestEventStoreDBAwayIsUnavailable checks that a command answered by an
// EventStoreDB that cannot be reached gets 503 at once, and that the
// service answers again once the node is back.
func TestEventStoreDBAwayIsUnavailable(t *testing.T) {
	srv := esdbtest.New(t)
	a := openTestApp(t, infra{esdb: srv.ConnectionString(), data: filepath.Join(t.TempDir(), "orders.db")}, slog.New(slog.DiscardHandler))
	api, _ := startServiceOn(t, a, serviceConfig{})
	place := func(id string) response {
		return call(t, api, "POST", "/orders", `{"orderId":"`+id+`","customerId":"c","items":[{"productId":"keyboard","quantity":1,"unitPrice":100}]}`)
	}
	srv.FailNext(esdbtest.MethodAppend, 1, status.Error(codes.Unavailable, "the node is away"))
	res := place("away-1")
	assert.Equal(t, http.StatusServiceUnavailable, res.status, res.body)
	res = place("away-2")
	assert.Equal(t, http.StatusCreated, res.status, "the store connects again by itself: %v", res.body)
}
