package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/internal/faultproxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file run the serve command, as the program does, on
// EventStoreDB (esdbtest) through a faultproxy, and take EventStoreDB away
// under it.

// lockedBuffer is an io.Writer safe for the command's goroutines and the
// test's; served receives each line written.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	served chan string // the address serve prints, once
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	const prefix = "orders: serving on http://"
	if i := strings.Index(b.buf.String(), prefix); i >= 0 && b.served != nil {
		rest := b.buf.String()[i+len(prefix):]
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			b.served <- rest[:j]
			b.served = nil
		}
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveCmd is the serve command running in the test's process.
type serveCmd struct {
	url    string
	stop   context.CancelFunc // what SIGINT and SIGTERM do
	done   chan struct{}      // closed once serve returned
	code   int                // its exit code, once done
	stderr *lockedBuffer
}

// exitCode waits up to 10s for serve to return, and returns its exit code
// and how long it took.
func (s *serveCmd) exitCode(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	receive(t, s.done, "serve returns")
	return s.code, time.Since(start)
}

// runServe runs `orders serve` with args on a free port until stop or the
// end of the test, and returns once it serves HTTP (ready or not).
func runServe(t *testing.T, args ...string) *serveCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	served := make(chan string, 1)
	stdout := &lockedBuffer{served: served}
	s := &serveCmd{stop: cancel, done: make(chan struct{}), stderr: &lockedBuffer{}}
	go func() {
		defer close(s.done)
		s.code = run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0"}, args...), stdout, s.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not return within 20s of the end of the test")
		}
		if t.Failed() {
			t.Logf("serve's log:\n%s", s.stderr.String())
		}
	})
	select {
	case addr := <-served:
		s.url = "http://" + addr
	case <-s.done:
		t.Fatalf("serve exited with %d before serving: %s", s.code, s.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("serve does not serve within 10s")
	}
	return s
}

// esdbBehindProxy starts an esdbtest server and a proxy in front of it,
// and returns the serve flags that keep the events there (and the read
// models in a SQLite file of the test's own).
func esdbBehindProxy(t *testing.T) (*esdbtest.Server, *faultproxy.Proxy, []string) {
	t.Helper()
	srv := esdbtest.New(t)
	p := faultproxy.Start(t, srv.Addr())
	return srv, p, []string{"-esdb", "esdb://" + p.Addr() + "?tls=false", "-data", filepath.Join(t.TempDir(), "orders.db")}
}

// httpAnswer is an HTTP answer: its status, header, body, and how long it
// took.
type httpAnswer struct {
	status int
	header http.Header
	body   string
	took   time.Duration
}

// do sends a request with a bound of 20s, and fails the test if there is no
// answer. header is pairs of names and values.
func (s *serveCmd) do(t *testing.T, method, path, body string, header ...string) httpAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return httpAnswer{status: res.StatusCode, header: res.Header, body: string(b), took: time.Since(start)}
}

// requireUnavailable checks what the service answers while EventStoreDB
// is away, for at least outage (longer than the client's own discovery
// lasts, about a second, and than the store's backoff between connection
// attempts reaches): alive, not ready, and commands refused with 503
// within bound.
func requireUnavailable(t *testing.T, s *serveCmd, outage, bound time.Duration) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond) // the pace of the sampling
	defer tick.Stop()
	n := 0
	for start := time.Now(); n == 0 || time.Since(start) < outage; n++ {
		if n > 0 {
			<-tick.C
		}
		assert.Equal(t, http.StatusOK, s.do(t, "GET", "/healthz", "").status, "alive")
		ready := s.do(t, "GET", "/readyz", "")
		assert.Equal(t, http.StatusServiceUnavailable, ready.status, ready.body)
		assert.Contains(t, ready.body, `"store":"error: `)
		id := fmt.Sprintf("away-%d", n)
		res := s.do(t, "POST", "/orders", orderBody(id))
		require.Equal(t, http.StatusServiceUnavailable, res.status, res.body)
		require.Less(t, res.took, bound, "the command is refused in time: %s", res.body)
		if n == 0 {
			t.Logf("POST /orders answered %d after %v: %s", res.status, res.took.Round(time.Millisecond), strings.TrimSpace(res.body))
		}
	}
	t.Logf("%d commands refused", n)
}

// requireRecovers waits until the service is ready again, then places an
// order and reads it back.
func requireRecovers(t *testing.T, s *serveCmd, srv *esdbtest.Server, id string) {
	t.Helper()
	requireReady(t, s)
	res := s.do(t, "POST", "/orders", orderBody(id))
	require.Equal(t, http.StatusCreated, res.status, res.body)
	var placed map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.body), &placed))
	assert.Equal(t, id, placed["orderId"], res.body)
	// The read model has the order: GET waits for the command's position.
	got := s.do(t, "GET", "/orders/"+id, "", PositionHeader, res.header.Get(PositionHeader))
	require.Equal(t, http.StatusOK, got.status, got.body)
	assert.Contains(t, got.body, `"customerId":"alice"`)
	events := srv.Events("order-" + id)
	require.NotEmpty(t, events)
	assert.Equal(t, "OrderPlaced", events[0].Type)
}

// TestServeWithEventStoreDBAwayAtStart starts serve while nothing gets
// through to EventStoreDB: it serves, is alive but not ready, refuses
// commands with 503 at once, and recovers by itself once the network is
// back.
func TestServeWithEventStoreDBAwayAtStart(t *testing.T) {
	srv, p, flags := esdbBehindProxy(t)
	p.Cut()
	s := runServe(t, flags...)
	requireUnavailable(t, s, 3*time.Second, 2*time.Second)
	assert.Empty(t, srv.All(), "nothing was written")

	p.Restore()
	requireRecovers(t, s, srv, "back-1")
	s.stop()
	code, _ := s.exitCode(t)
	assert.Equal(t, 0, code, s.stderr.String())
}

// TestServeRidesThroughEventStoreDBOutages takes EventStoreDB away from a
// serving service twice, once cut (connections reset, dials refused) and
// once stalled (connections open, no answers): each time commands are
// refused with 503 within the store's call timeout, and the service
// recovers by itself.
func TestServeRidesThroughEventStoreDBOutages(t *testing.T) {
	srv, p, flags := esdbBehindProxy(t)
	s := runServe(t, flags...)
	requireRecovers(t, s, srv, "before")

	p.Cut()
	requireUnavailable(t, s, 3*time.Second, 2*time.Second)
	p.Restore()
	requireRecovers(t, s, srv, "after-cut")

	p.Stall()
	requireUnavailable(t, s, 3*time.Second, 8*time.Second)
	p.Restore()
	requireRecovers(t, s, srv, "after-stall")
	s.stop()
	code, _ := s.exitCode(t)
	assert.Equal(t, 0, code, s.stderr.String())
}

// TestServeStopsWhileEventStoreDBStalls cancels serve's context (what
// SIGINT and SIGTERM do) while EventStoreDB does not answer, with a command
// under way and the store connecting anew: serve returns within 10s.
func TestServeStopsWhileEventStoreDBStalls(t *testing.T) {
	srv, p, flags := esdbBehindProxy(t)
	s := runServe(t, flags...)
	requireRecovers(t, s, srv, "before")

	p.Stall()
	// The first command waits for the store's call timeout, which makes
	// the store give up its client: the next one connects anew, and the
	// stall holds that connection attempt.
	res := s.do(t, "POST", "/orders", orderBody("stalled-1"))
	require.Equal(t, http.StatusServiceUnavailable, res.status, res.body)
	posted, wrote := make(chan int, 1), make(chan struct{})
	go func() {
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.WithoutCancel(t.Context()), trace),
			http.MethodPost, s.url+"/orders", strings.NewReader(orderBody("stalled-2")))
		if err != nil {
			posted <- -1
			return
		}
		// A connection of its own: an idle one that the client reuses could
		// be closed by the shutdown before the server reads the request.
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		res, err := client.Do(req)
		if err != nil {
			t.Logf("the command under way: %v", err)
			posted <- -1
			return
		}
		res.Body.Close()
		posted <- res.StatusCode
	}()
	receive(t, wrote, "the command is sent")
	// A request on another connection, answered: the server accepted the
	// command's connection before this one's, and reads it at once. (The
	// store's readiness check waits for its probe's timeout, 1s.)
	assert.Equal(t, http.StatusServiceUnavailable, s.do(t, "GET", "/readyz", "").status)
	s.stop()
	code, took := s.exitCode(t)
	t.Logf("serve returned %d after %v", code, took.Round(time.Millisecond))
	assert.Less(t, took, 10*time.Second)
	assert.Equal(t, http.StatusServiceUnavailable, receive(t, posted, "the command under way ends"))
}

// postgresBehindProxy returns a proxy in front of the PostgreSQL server of
// EVENTFOLD_TEST_POSTGRES, and the serve flags that keep the events and
// read models there, in a schema of the test's own, through the proxy.
func postgresBehindProxy(t *testing.T) (*faultproxy.Proxy, []string) {
	t.Helper()
	pg := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if pg == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: no PostgreSQL for the outage test")
	}
	u, err := url.Parse(postgresSchema(t, pg))
	require.NoError(t, err, "EVENTFOLD_TEST_POSTGRES must be a URL for this test")
	p := faultproxy.Start(t, u.Host)
	u.Host = p.Addr()
	return p, []string{"-postgres", u.String()}
}

// placeAndRead places an order and reads it back from the read model.
func placeAndRead(t *testing.T, s *serveCmd, id string) {
	t.Helper()
	placed := s.do(t, "POST", "/orders", orderBody(id))
	require.Equal(t, http.StatusCreated, placed.status, placed.body)
	got := s.do(t, "GET", "/orders/"+id, "", PositionHeader, placed.header.Get(PositionHeader))
	require.Equal(t, http.StatusOK, got.status, got.body)
}

// TestServeRidesThroughAPostgreSQLCut runs serve with its events and read
// models in PostgreSQL, through a faultproxy, and cuts the connections for
// longer than a second: commands are refused at once with 503 (the SQL
// store's errors wrap es.ErrUnavailable), the service is not ready, and it
// recovers by itself once the network is back.
func TestServeRidesThroughAPostgreSQLCut(t *testing.T) {
	p, flags := postgresBehindProxy(t)
	s := runServe(t, flags...)
	requireReady(t, s)
	placeAndRead(t, s, "pg-before")

	p.Cut()
	tick := time.NewTicker(100 * time.Millisecond) // the pace of the sampling
	defer tick.Stop()
	for start := time.Now(); time.Since(start) < 1500*time.Millisecond; <-tick.C {
		ready := s.do(t, "GET", "/readyz", "")
		assert.Equal(t, http.StatusServiceUnavailable, ready.status, ready.body)
		res := s.do(t, "POST", "/orders", orderBody("pg-cut"))
		require.Equal(t, http.StatusServiceUnavailable, res.status, res.body)
		require.Less(t, res.took, 2*time.Second, "the command fails at once: %s", res.body)
	}

	p.Restore()
	requireReady(t, s)
	placeAndRead(t, s, "pg-after")
	s.stop()
	code, _ := s.exitCode(t)
	assert.Equal(t, 0, code, s.stderr.String())
}

// TestServeRidesThroughAPostgreSQLStall stalls the connections to
// PostgreSQL under a serving service (they stay open, bytes vanish): a
// command is refused with 503 within about the store's call timeout (5s),
// not after the bus's request timeout (10s) nor the minutes TCP takes; the
// service is not ready; once the network is back it recovers by itself.
func TestServeRidesThroughAPostgreSQLStall(t *testing.T) {
	p, flags := postgresBehindProxy(t)
	s := runServe(t, flags...)
	requireReady(t, s)
	placeAndRead(t, s, "pg-before")

	p.Stall()
	res := s.do(t, "POST", "/orders", orderBody("pg-stalled"))
	t.Logf("POST /orders answered %d after %v: %s", res.status, res.took.Round(time.Millisecond), strings.TrimSpace(res.body))
	require.Equal(t, http.StatusServiceUnavailable, res.status, res.body)
	assert.Contains(t, res.body, "store unavailable")
	assert.Less(t, res.took, 8*time.Second, "refused within about the store's call timeout")
	ready := s.do(t, "GET", "/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, ready.status, ready.body)

	p.Restore()
	requireReady(t, s)
	placeAndRead(t, s, "pg-after")
	s.stop()
	code, _ := s.exitCode(t)
	assert.Equal(t, 0, code, s.stderr.String())
}

// TestServeStopsWhilePostgreSQLStalls cancels serve's context (what SIGINT
// and SIGTERM do) while PostgreSQL does not answer, with a command under
// way: serve returns within its -shutdown-timeout, with exit code 0. The shutdown waits for the command (503 after the store's call
// timeout, 5s), then for the read models' runners, each giving its lease
// back, which sqlproj bounds by 1s, then closes the stores (the pool waits
// at most 1s for pgx's cleanup of the connections that timed out).
//
// No event flows when the stall begins: an event handler of the bus that
// the stall catches in sqlbus.Processed (bounded by 5s a call) holds the
// relay's last publish, and the shutdown with it, for longer.
func TestServeStopsWhilePostgreSQLStalls(t *testing.T) {
	p, flags := postgresBehindProxy(t)
	// About 6s on a quiet machine, within the default 10s; 15s leaves room
	// for a loaded one (the whole test suite runs beside it in CI).
	const shutdownTimeout = 15 * time.Second
	s := runServe(t, append(flags, "-shutdown-timeout", shutdownTimeout.String())...)
	requireReady(t, s)

	p.Stall()
	posted, wrote := make(chan int, 1), make(chan struct{})
	go func() {
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.WithoutCancel(t.Context()), trace),
			http.MethodPost, s.url+"/orders", strings.NewReader(orderBody("pg-stalled")))
		if err != nil {
			posted <- -1
			return
		}
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		res, err := client.Do(req)
		if err != nil {
			t.Logf("the command under way: %v", err)
			posted <- -1
			return
		}
		res.Body.Close()
		posted <- res.StatusCode
	}()
	receive(t, wrote, "the command is sent")
	// A request on another connection, answered: the server has read the
	// command's request by now.
	assert.Equal(t, http.StatusServiceUnavailable, s.do(t, "GET", "/readyz", "").status)
	s.stop()
	stopped := time.Now()
	select {
	case <-s.done:
	case <-time.After(shutdownTimeout + 5*time.Second):
		t.Fatalf("serve did not return within %v of the stop", shutdownTimeout+5*time.Second)
	}
	code, took := s.code, time.Since(stopped)
	t.Logf("serve returned %d after %v", code, took.Round(time.Millisecond))
	assert.Less(t, took, shutdownTimeout, "serve returns within its shutdown timeout")
	assert.Equal(t, 0, code, s.stderr.String())
	assert.Equal(t, http.StatusServiceUnavailable, receive(t, posted, "the command under way ends"))
}

// requireReady waits up to 20s for the service to be ready.
func requireReady(t *testing.T, s *serveCmd) {
	t.Helper()
	start := time.Now()
	for {
		res := s.do(t, "GET", "/readyz", "")
		if res.status == http.StatusOK {
			t.Logf("ready after %v", time.Since(start).Round(time.Millisecond))
			return
		}
		require.Less(t, time.Since(start), 20*time.Second, "not ready within 20s: %s", res.body)
		time.Sleep(20 * time.Millisecond) // polling: the service recovers by itself
	}
}
