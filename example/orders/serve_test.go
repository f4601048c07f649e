package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// served is a service that serve runs on a TCP listener.
type served struct {
	url, addr string
	svc       *service
	stop      context.CancelFunc // what a stop signal does
	done      chan error         // serve's result
}

// startServe runs serve on a until the test ends (or stop is called), and
// returns once the service is ready (readyz answers 200).
func startServe(t *testing.T, a *app, svcCfg serviceConfig, cfg serveConfig, hook func(*service)) *served {
	t.Helper()
	svc, err := newService(t.Context(), a, svcCfg)
	require.NoError(t, err)
	if hook != nil {
		hook(svc)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	s := &served{url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), svc: svc, stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- serve(ctx, ln, svc, cfg) }()
	t.Cleanup(func() {
		cancel()
		<-svc.stopped
	})
	require.Eventually(t, func() bool {
		res, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 10*time.Second, 5*time.Millisecond, "the service gets ready")
	return s
}

// sqliteApp opens the application on the SQLite file path until the test
// ends.
func sqliteApp(t *testing.T, path string) *app {
	t.Helper()
	return openTestApp(t, infra{data: path}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// holdPOST returns a wrapper that holds each POST until release is closed,
// after sending on entered.
func holdPOST(entered chan<- struct{}, release <-chan struct{}) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				entered <- struct{}{}
				<-release
			}
			h.ServeHTTP(w, r)
		})
	}
}

// post sends a POST in the background and delivers its status and body.
func post(url, body string) <-chan response {
	out := make(chan response, 1)
	go func() {
		res, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			out <- response{status: -1, body: map[string]any{"error": err.Error()}}
			return
		}
		defer res.Body.Close()
		r := response{status: res.StatusCode}
		_ = json.NewDecoder(res.Body).Decode(&r.body)
		out <- r
	}()
	return out
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		require.FailNow(t, "timed out waiting: "+what)
		panic("unreachable")
	}
}

func TestServeFinishesTheRequestsUnderWayAndRefusesNewConnections(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	a := sqliteApp(t, filepath.Join(t.TempDir(), "orders.db"))
	s := startServe(t, a, serviceConfig{}, serveConfig{wrap: holdPOST(entered, release)}, nil)

	answer := post(s.url+"/orders", placeBody)
	receive(t, entered, "the request is under way")
	start := time.Now()
	s.stop() // the stop signal
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 5*time.Second, time.Millisecond, "new connections are refused once the shutdown began")
	close(release)

	res := receive(t, answer, "the answer of the request under way")
	require.Equal(t, http.StatusCreated, res.status, res.body)
	assert.Equal(t, "pending", res.body["status"])
	require.NoError(t, receive(t, s.done, "serve returns"))
	assert.Less(t, time.Since(start), defaultShutdownTimeout)
	receive(t, s.svc.stopped, "the service stopped")
	assert.Zero(t, s.svc.bus.Dropped())
}

func TestServeExitsAfterTheShutdownTimeout(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	a := sqliteApp(t, filepath.Join(t.TempDir(), "orders.db"))
	const timeout = 200 * time.Millisecond
	s := startServe(t, a, serviceConfig{}, serveConfig{shutdownTimeout: timeout, wrap: holdPOST(entered, release)}, nil)

	answer := post(s.url+"/orders", placeBody)
	receive(t, entered, "the request is under way")
	start := time.Now()
	s.stop()
	err := receive(t, s.done, "serve returns")
	elapsed := time.Since(start)
	require.ErrorIs(t, err, errShutdownTimeout)
	assert.GreaterOrEqual(t, elapsed, timeout)
	assert.Less(t, elapsed, timeout+2*time.Second, "serve returns soon after the timeout")

	close(release) // let the held request and the shutdown end
	receive(t, answer, "the held request ends")
	receive(t, s.svc.stopped, "the service stopped")
}

func TestStockCheckUnderWayAtShutdownIsNotLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.db")
	entered, release := make(chan struct{}, 1), make(chan struct{})
	first := startServe(t, sqliteApp(t, path), serviceConfig{autoConfirm: true}, serveConfig{}, func(svc *service) {
		svc.beforeConfirm = func(context.Context) {
			entered <- struct{}{}
			<-release
		}
	})
	res := receive(t, post(first.url+"/orders", placeBody), "the order is placed")
	require.Equal(t, http.StatusCreated, res.status, res.body)
	receive(t, entered, "the stock check is under way")
	first.stop() // the stop signal, with the stock check's event handler under way
	close(release)
	require.NoError(t, receive(t, first.done, "serve returns"))
	assert.Zero(t, first.svc.bus.Dropped(), "no event was dropped")

	// A restart on the same file: the order is confirmed.
	second := startServe(t, sqliteApp(t, path), serviceConfig{autoConfirm: true}, serveConfig{}, nil)
	require.Eventually(t, func() bool {
		res, err := http.Get(second.url + "/orders/42")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var body map[string]any
		return json.NewDecoder(res.Body).Decode(&body) == nil && body["status"] == "confirmed"
	}, 10*time.Second, 5*time.Millisecond, "the order gets confirmed")
}

func TestReadiness(t *testing.T) {
	svc, err := newService(t.Context(), testApp(t, memstore.MustNew()), serviceConfig{autoConfirm: true})
	require.NoError(t, err)
	srv := httptest.NewServer(newAPI(svc).routes())
	defer srv.Close()

	live := call(t, srv, http.MethodGet, "/healthz", "")
	assert.Equal(t, http.StatusOK, live.status)

	// Nothing runs yet.
	res := call(t, srv, http.MethodGet, "/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, res.status, res.body)
	assert.Equal(t, false, res.body["ready"])
	assert.Equal(t, map[string]any{
		"store": "ok", "bus": "starting", "relay": "stopped",
		"order-summaries": "stopped", "order-details": "stopped",
	}, res.body["checks"])
	assert.ElementsMatch(t, []any{"bus", "relay", "order-summaries", "order-details"}, res.body["notReady"])

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.run(ctx) }()
	// Ready once the runners are live (a relay in standby counts as ready:
	// another replica relays), and here every one goes live.
	allLive := map[string]any{
		"store": "ok", "bus": "running", "relay": "live",
		"order-summaries": "live", "order-details": "live",
	}
	require.Eventually(t, func() bool {
		res = call(t, srv, http.MethodGet, "/readyz", "")
		return res.status == http.StatusOK && assert.ObjectsAreEqual(allLive, res.body["checks"])
	}, 10*time.Second, time.Millisecond, "ready once the runners are live")
	assert.Equal(t, true, res.body["ready"])
	assert.Nil(t, res.body["notReady"])

	cancel()
	require.NoError(t, receive(t, done, "the service stops"))
	res = call(t, srv, http.MethodGet, "/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	assert.Equal(t, "shutting down", res.body["checks"].(map[string]any)["service"])
}

// failingReads is a store whose ReadAll fails while failing is set.
type failingReads struct {
	*memstore.Store
	failing atomic.Bool
}

func (s *failingReads) ReadAll(ctx context.Context, opts es.ReadAllOptions) iter.Seq2[es.RecordedEvent, error] {
	if s.failing.Load() {
		return func(yield func(es.RecordedEvent, error) bool) {
			yield(es.RecordedEvent{}, errors.New("the disk is away"))
		}
	}
	return s.Store.ReadAll(ctx, opts)
}

func TestReadinessFailsWhileTheStoreFails(t *testing.T) {
	store := &failingReads{Store: memstore.MustNew()}
	srv, _ := startServiceOn(t, testApp(t, store), serviceConfig{})
	require.Equal(t, http.StatusOK, call(t, srv, http.MethodGet, "/readyz", "").status)

	store.failing.Store(true)
	res := call(t, srv, http.MethodGet, "/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, res.status, res.body)
	assert.Equal(t, []any{"store"}, res.body["notReady"])
	assert.Equal(t, "error: the disk is away", res.body["checks"].(map[string]any)["store"])
	assert.Equal(t, http.StatusOK, call(t, srv, http.MethodGet, "/healthz", "").status, "the process is alive")

	// Ready again once the store answers (a runner that met the failure
	// restarts after its backoff).
	store.failing.Store(false)
	assert.Eventually(t, func() bool { return call(t, srv, http.MethodGet, "/readyz", "").status == http.StatusOK },
		10*time.Second, 5*time.Millisecond)
}

// The flags of replicas refuse what cannot work, before serve connects to
// anything.
func TestServeRefusesBadReplicaFlags(t *testing.T) {
	data := filepath.Join(t.TempDir(), "orders.db")
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-bus-esdb"}, "-bus-esdb carries the bus on the event store: it needs the events in EventStoreDB (-esdb)"},
		{[]string{"-bus-esdb", "-esdb", "esdb://127.0.0.1:1?tls=false", "-nats", "nats://127.0.0.1:1"}, "-bus-esdb and -nats: the bus runs on one of them"},
		{[]string{"-lease-ttl", "10ms"}, "-lease-ttl 10ms: want at least 100ms"},
		{[]string{"-bus-ack-wait", "0s"}, "-bus-ack-wait 0s: want a positive duration"},
	} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 2, run(t.Context(), append([]string{"serve", "-data", data}, tt.args...), &stdout, &stderr), tt.args)
		assert.Contains(t, stderr.String(), tt.msg)
	}
	_, err := os.Stat(data)
	assert.ErrorIs(t, err, os.ErrNotExist, "serve opened nothing")
}
