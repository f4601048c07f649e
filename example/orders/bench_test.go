package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBenchCommand runs the bench command against the service, served as
// serve serves it, on a SQLite file: 2 clients, 20 orders, each confirmed
// by the stock check.
func TestBenchCommand(t *testing.T) {
	a := openTestApp(t, infra{data: filepath.Join(t.TempDir(), "orders.db")}, slog.New(slog.DiscardHandler))
	url := serveApp(t, a, serviceConfig{autoConfirm: true})

	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"bench", "-url", url + "/", "-clients", "2", "-n", "20"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	out := stdout.String()
	assert.Contains(t, out, "20 orders from 2 clients against "+url+" in ")
	assert.Contains(t, out, "commands/s")
	assert.Contains(t, out, "command + read      p50 ")
	assert.Contains(t, out, "placed → confirmed  p50 ")

	// The orders are in the store, each placed and confirmed.
	types := map[string]int{}
	for ev, err := range a.store.ReadAll(t.Context(), es.ReadAllOptions{}) {
		require.NoError(t, err)
		if !ev.IsSystem() {
			types[ev.Type]++
		}
	}
	assert.Equal(t, map[string]int{"OrderPlaced": 20, "OrderConfirmed": 20}, types)
}

func TestBenchCommandFailures(t *testing.T) {
	a := openTestApp(t, infra{data: filepath.Join(t.TempDir(), "orders.db")}, slog.New(slog.DiscardHandler))
	url := serveApp(t, a, serviceConfig{autoConfirm: false})
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no clients", []string{"-clients", "0"}, 2, "orders bench: -clients must be positive, not 0"},
		{"no orders", []string{"-n", "0"}, 2, "orders bench: -n must be positive, not 0"},
		{"argument", []string{"now"}, 2, "usage: orders bench [flags]"},
		{"not a service", []string{"-url", url + "/nope", "-n", "1"}, 1, "orders bench: POST /orders: 404 Not Found"},
		{"no stock check", []string{"-url", url, "-n", "2", "-confirm-wait", "50ms"}, 1,
			"orders bench: the stock check did not confirm the orders within 50ms (is the service running with -auto-confirm?)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"bench"}, tt.args...), &stdout, &stderr)
			assert.Equal(t, tt.code, code, "stdout: %s", stdout.String())
			assert.Contains(t, stderr.String(), tt.stderr)
		})
	}
}

func TestPercentile(t *testing.T) {
	ds := func(ms ...int) []time.Duration {
		out := make([]time.Duration, len(ms))
		for i, m := range ms {
			out[i] = time.Duration(m) * time.Millisecond
		}
		return out
	}
	assert.Equal(t, time.Duration(0), percentile(nil, 0.5))
	assert.Equal(t, 3*time.Millisecond, percentile(ds(5, 1, 3, 2, 4), 0.5))
	assert.Equal(t, 5*time.Millisecond, percentile(ds(5, 1, 3, 2, 4), 0.99))
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i
	}
	assert.Equal(t, 50*time.Millisecond, percentile(ds(hundred...), 0.5))
	assert.Equal(t, 99*time.Millisecond, percentile(ds(hundred...), 0.99))
}

// BenchmarkService measures the orders service end to end: the HTTP API,
// served as "orders serve" serves it on a TCP listener on 127.0.0.1, driven
// by the load generator of "orders bench" with 1 and 16 clients. An op is
// an order: a POST /orders, then a GET /orders/{id} that sends back the
// position the POST answered with (read your writes). Each sub-benchmark
// reports the orders per second (req/s), the p50 and p99 of the POST and
// GET together, the p50 and p99 of the time from sending the POST until
// the stock check's OrderConfirmed event is stored (its Created time),
// the confirmations per second (from the first POST to the last
// confirmation: below req/s, the stock check falls behind and the
// confirmation latency grows with the run's length), and the load average.
// Configurations:
//
//   - bare-sqlite, bare-postgres: the baseline, hand-written SQL behind
//     the same HTTP shape (see bareAPI);
//   - sqlite: everything in one SQLite file (the default setup);
//   - postgres: events and read models in PostgreSQL, in-process bus
//     (needs EVENTFOLD_TEST_POSTGRES);
//   - postgres+nats: the bus on NATS JetStream (needs EVENTFOLD_TEST_NATS
//     too).
//
// Each configuration starts on empty tables (a new SQLite file, a new
// PostgreSQL schema, new NATS streams); its clients=16 run follows its
// clients=1 run on the same service. Run it with a count of orders, such as
// -benchtime 2000x for clients=16 (see docs/performance.md).
func BenchmarkService(b *testing.B) {
	pg, natsURL := os.Getenv("EVENTFOLD_TEST_POSTGRES"), os.Getenv("EVENTFOLD_TEST_NATS")
	needPostgres := func(b *testing.B) {
		if pg == "" {
			b.Skip("EVENTFOLD_TEST_POSTGRES is not set: no PostgreSQL for the service benchmark")
		}
	}
	b.Run("bare-sqlite", func(b *testing.B) {
		benchClients(b, serveBare(b, newBareSQLite(b, filepath.Join(b.TempDir(), "bare.db"))), nil)
	})
	b.Run("sqlite", func(b *testing.B) {
		a := openTestApp(b, infra{data: filepath.Join(b.TempDir(), "orders.db")}, quietLogger())
		benchClients(b, serveApp(b, a, serviceConfig{autoConfirm: true}), a.store)
	})
	b.Run("bare-postgres", func(b *testing.B) {
		needPostgres(b)
		benchClients(b, serveBare(b, newBarePostgres(b, postgresSchema(b, pg))), nil)
	})
	b.Run("postgres", func(b *testing.B) {
		needPostgres(b)
		a := openTestApp(b, infra{postgres: postgresSchema(b, pg)}, quietLogger())
		benchClients(b, serveApp(b, a, serviceConfig{autoConfirm: true}), a.store)
	})
	b.Run("postgres+nats", func(b *testing.B) {
		needPostgres(b)
		if natsURL == "" {
			b.Skip("EVENTFOLD_TEST_NATS is not set: no NATS JetStream for the service benchmark")
		}
		a := openTestApp(b, infra{postgres: postgresSchema(b, pg)}, quietLogger())
		prefix := "orders-" + shortID() + "-"
		b.Cleanup(func() { deleteStreams(b, natsURL, prefix) })
		benchClients(b, serveApp(b, a, serviceConfig{nats: natsURL, topicPrefix: prefix, autoConfirm: true}), a.store)
	})
}

// benchClients runs the load generator against the API at url, with 1
// and 16 clients. With a store, it also measures how long the stock check
// takes to confirm an order.
func benchClients(b *testing.B, url string, store es.Store) {
	var watch *confirmWatch
	if store != nil {
		watch = watchConfirmations(b, store)
	}
	for _, clients := range []int{1, 16} {
		b.Run("clients="+strconv.Itoa(clients), func(b *testing.B) {
			l := load{url: url, clients: clients, orders: b.N, prefix: newRunPrefix()}
			b.ResetTimer()
			res, err := l.run(b.Context())
			b.StopTimer()
			require.NoError(b, err)
			lat := res.latencies()
			b.ReportMetric(res.rate(), "req/s")
			b.ReportMetric(msOf(percentile(lat, 0.50)), "p50-ms")
			b.ReportMetric(msOf(percentile(lat, 0.99)), "p99-ms")
			if watch != nil {
				conf, last := watch.latencies(b, res)
				b.ReportMetric(float64(len(conf))/last.Sub(res.start()).Seconds(), "confirms/s")
				b.ReportMetric(msOf(percentile(conf, 0.50)), "confirm-p50-ms")
				b.ReportMetric(msOf(percentile(conf, 0.99)), "confirm-p99-ms")
			}
			if avg := loadAverage(); avg != "" {
				one, err := strconv.ParseFloat(strings.Fields(avg)[0], 64)
				require.NoError(b, err)
				b.ReportMetric(one, "loadavg")
				if b.N > 1 { // not the first round, of one order
					b.Logf("%d orders, %d clients: load average %s", b.N, clients, avg)
				}
			}
		})
	}
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// openTestApp opens the application on in, until the test ends.
func openTestApp(tb testing.TB, in infra, logger *slog.Logger) *app {
	tb.Helper()
	a, err := openApp(tb.Context(), in, logger)
	require.NoError(tb, err)
	tb.Cleanup(func() { assert.NoError(tb, a.Close()) })
	return a
}

// serveApp runs the service on a with its HTTP API as "orders serve" does
// (the same wiring and handler, on a TCP listener on 127.0.0.1) until the
// test ends, and returns the API's URL once the read models and the relay
// are live.
func serveApp(tb testing.TB, a *app, cfg serviceConfig) string {
	tb.Helper()
	svc, err := newService(tb.Context(), a, cfg)
	require.NoError(tb, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.WithoutCancel(tb.Context()))
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, svc, serveConfig{}) }()
	tb.Cleanup(func() {
		cancel()
		require.NoError(tb, <-done)
	})
	waitLive(tb, svc)
	return "http://" + ln.Addr().String()
}

// waitLive waits until the service's read models and relay are live.
func waitLive(tb testing.TB, svc *service) {
	tb.Helper()
	for _, r := range append(svc.app.runners, nil) {
		status := svc.relay.Status
		if r != nil {
			status = r.Status
		}
		require.Eventually(tb, func() bool {
			st, err := status(tb.Context())
			return err == nil && st.State == projection.StateLive
		}, 10*time.Second, time.Millisecond, "the read models and the relay go live")
	}
}

// serveBare serves the baseline on a test server until the test ends, and
// returns its URL.
func serveBare(tb testing.TB, bare *bareAPI) string {
	tb.Helper()
	srv := httptest.NewServer(bare.routes())
	tb.Cleanup(srv.Close)
	return srv.URL
}

// postgresSchema creates a schema of its own in the PostgreSQL database at
// url, dropped when the test ends, and returns url with the schema first
// on the search path.
func postgresSchema(tb testing.TB, url string) string {
	tb.Helper()
	admin, err := sql.Open("pgx", url)
	require.NoError(tb, err)
	tb.Cleanup(func() { admin.Close() })
	schema := "orders_" + shortID()
	_, err = admin.ExecContext(tb.Context(), "CREATE SCHEMA "+schema)
	require.NoError(tb, err)
	tb.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}

// shortID returns 8 random hexadecimal digits.
func shortID() string { return uuid.NewString()[:8] }

// confirmWatch notes when the stock check confirms each order: a
// subscription to the store's OrderConfirmed events keeps each one's
// Created time, which the store stamps when it appends the event.
type confirmWatch struct {
	mu      sync.Mutex
	at      map[string]time.Time // by order ID
	err     error                // why the subscription ended
	changed chan struct{}        // a value when at or err changed
}

// watchConfirmations starts a confirmWatch on store, live when it returns,
// until the test ends.
func watchConfirmations(tb testing.TB, store es.Store) *confirmWatch {
	tb.Helper()
	w := &confirmWatch{at: make(map[string]time.Time), changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.WithoutCancel(tb.Context()))
	live, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		w.watch(ctx, store, live)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-live:
	case <-done:
		require.NoError(tb, w.err, "the subscription to OrderConfirmed events")
		require.FailNow(tb, "the subscription to OrderConfirmed events ended")
	case <-time.After(10 * time.Second):
		require.FailNow(tb, "the subscription to OrderConfirmed events did not go live")
	}
	return w
}

// watch runs the subscription until ctx is done, and closes live when it
// has caught up. It keeps the error that ended it in w.err.
func (w *confirmWatch) watch(ctx context.Context, store es.Store, live chan struct{}) {
	err := w.subscribe(ctx, store, live)
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	w.signal()
}

func (w *confirmWatch) subscribe(ctx context.Context, store es.Store, live chan struct{}) error {
	opts := es.SubscribeAllOptions{From: es.End, Filter: es.EventTypePrefixes("OrderConfirmed")}
	for msg, err := range store.SubscribeAll(ctx, opts) {
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch msg.Kind {
		case es.KindCaughtUp:
			select {
			case <-live:
			default:
				close(live)
			}
		case es.KindEvent:
			var e struct {
				OrderID string `json:"orderId"`
			}
			if err := json.Unmarshal(msg.Event.Data, &e); err != nil {
				return err
			}
			w.mu.Lock()
			w.at[e.OrderID] = msg.Event.Created
			w.mu.Unlock()
			w.signal()
		}
	}
	return nil
}

func (w *confirmWatch) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// latencies waits until every order of res is confirmed, and returns, for
// each, the time from sending its POST until its confirmation was stored,
// and when the last confirmation was stored. It fails the test when no
// order is confirmed for 30 seconds.
func (w *confirmWatch) latencies(tb testing.TB, res loadResult) ([]time.Duration, time.Time) {
	tb.Helper()
	const patience = 30 * time.Second
	stalled := time.NewTimer(patience)
	defer stalled.Stop()
	for {
		w.mu.Lock()
		out := make([]time.Duration, 0, len(res.placed))
		var last time.Time
		for _, p := range res.placed {
			if at, ok := w.at[p.id]; ok {
				out = append(out, at.Sub(p.start))
				if at.After(last) {
					last = at
				}
			}
		}
		err := w.err
		w.mu.Unlock()
		require.NoError(tb, err, "the subscription to OrderConfirmed events")
		if len(out) == len(res.placed) {
			return out, last
		}
		select {
		case <-w.changed:
			stalled.Reset(patience)
		case <-stalled.C:
			require.FailNow(tb, fmt.Sprintf("the stock check confirmed %d of %d orders, then none for %v", len(out), len(res.placed), patience))
		}
	}
}

// TestLoadOnBareBaseline runs the load generator against the benchmark's
// baseline, so that neither can rot unnoticed.
func TestLoadOnBareBaseline(t *testing.T) {
	url := serveBare(t, newBareSQLite(t, filepath.Join(t.TempDir(), "bare.db")))
	l := load{url: url, clients: 2, orders: 20, prefix: newRunPrefix()}
	res, err := l.run(t.Context())
	require.NoError(t, err)
	assert.Len(t, res.placed, 20)
	assert.ElementsMatch(t, res.ids(), func() (ids []string) {
		for i := range 20 {
			ids = append(ids, fmt.Sprintf("%s-%d", l.prefix, i+1))
		}
		return ids
	}())

	// Placing an order twice is a conflict, as in the service.
	again := load{url: url, clients: 1, orders: 1, prefix: l.prefix}
	_, err = again.run(t.Context())
	assert.ErrorContains(t, err, "409 Conflict")
}
