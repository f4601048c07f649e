package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/example/orders/readmodel"
	"github.com/google/uuid"
)

// benchCommand drives a running service over HTTP with the load generator
// that BenchmarkService uses, and prints what it measured.
func benchCommand(fs *flag.FlagSet) action {
	url := fs.String("url", "http://127.0.0.1:8080", "the `URL` of a running orders service (orders serve)")
	clients := fs.Int("clients", 16, "how many clients place orders at once")
	n := fs.Int("n", 2000, "how many orders to place in all")
	wait := fs.Duration("confirm-wait", 2*time.Minute, "how long to wait for the stock check to confirm the orders placed; 0 skips the confirmation latency")
	return func(ctx context.Context, stdout, stderr io.Writer, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *clients < 1 {
			return usagef("-clients must be positive, not %d", *clients)
		}
		if *n < 1 {
			return usagef("-n must be positive, not %d", *n)
		}
		if *wait < 0 {
			return usagef("-confirm-wait must not be negative, not %v", *wait)
		}
		l := load{url: strings.TrimRight(*url, "/"), clients: *clients, orders: *n, prefix: newRunPrefix()}
		res, err := l.run(ctx)
		if err != nil {
			return err
		}
		lat := res.latencies()
		fmt.Fprintf(stdout, "%d orders from %d clients against %s in %v\n", len(res.placed), l.clients, l.url, res.elapsed.Round(time.Millisecond))
		fmt.Fprintf(stdout, "  commands/s          %.1f\n", res.rate())
		fmt.Fprintf(stdout, "  command + read      p50 %s  p99 %s\n", ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99)))
		if *wait > 0 {
			conf, err := l.confirmations(ctx, res.ids(), *wait)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "  placed → confirmed  p50 %s  p99 %s  (on the service's clock)\n", ms(percentile(conf, 0.50)), ms(percentile(conf, 0.99)))
		}
		if avg := loadAverage(); avg != "" {
			fmt.Fprintf(stdout, "  load average        %s (this machine)\n", avg)
		}
		return nil
	}
}

// load is a load generator for the orders API: clients concurrent clients
// place orders in all, each one a POST /orders of a new order of products
// from the catalog (so that the stock check confirms it), then a GET of
// that order that sends back the position the POST answered with, so that
// it reads its own write.
type load struct {
	url     string // the service's base URL, without a trailing slash
	clients int
	orders  int
	prefix  string // order IDs are prefix-1, prefix-2, …: unique per run
}

// newRunPrefix returns a prefix of order IDs that no other run uses.
func newRunPrefix() string { return "b" + strings.ReplaceAll(uuid.NewString()[:13], "-", "") }

// placed is an order that a client placed and read back.
type placed struct {
	id      string
	start   time.Time     // when the POST was sent
	latency time.Duration // from start until the GET's answer was read
}

// loadResult is what a run of the load generator measured.
type loadResult struct {
	placed  []placed
	elapsed time.Duration // from the first request to the last answer
}

// rate returns the orders placed (and read back) per second.
func (r loadResult) rate() float64 { return float64(len(r.placed)) / r.elapsed.Seconds() }

// start returns when the first order was sent.
func (r loadResult) start() time.Time {
	var first time.Time
	for _, p := range r.placed {
		if first.IsZero() || p.start.Before(first) {
			first = p.start
		}
	}
	return first
}

// latencies returns the latencies of the orders, command and read.
func (r loadResult) latencies() []time.Duration {
	out := make([]time.Duration, len(r.placed))
	for i, p := range r.placed {
		out[i] = p.latency
	}
	return out
}

// ids returns the IDs of the orders placed.
func (r loadResult) ids() []string {
	out := make([]string, len(r.placed))
	for i, p := range r.placed {
		out[i] = p.id
	}
	return out
}

// run places l.orders orders from l.clients clients, and stops at the first
// failure.
func (l load) run(ctx context.Context) (loadResult, error) {
	client := newLoadClient(l.clients)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var next atomic.Int64
	perClient := make([][]placed, l.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range l.clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 0xB0B))
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(l.orders) {
					return
				}
				p, err := l.placeAndRead(ctx, client, rng, fmt.Sprintf("%s-%d", l.prefix, i), c)
				if err != nil {
					cancel(err)
					return
				}
				perClient[c] = append(perClient[c], p)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return loadResult{}, err
	}
	res := loadResult{elapsed: elapsed, placed: slices.Concat(perClient...)}
	return res, nil
}

// newLoadClient returns an HTTP client that keeps a connection per client
// (the default transport keeps only two per host).
func newLoadClient(clients int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = clients
	t.MaxIdleConnsPerHost = clients
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// placeAndRead places order id for client c and reads it back.
func (l load) placeAndRead(ctx context.Context, client *http.Client, rng *rand.Rand, id string, c int) (placed, error) {
	req := placeRequest{OrderID: id, CustomerID: "bench-" + strconv.Itoa(c)}
	for range 1 + rng.IntN(3) {
		p := seedProducts[rng.IntN(len(seedProducts))]
		req.Items = append(req.Items, order.Item{ProductID: p.id, Quantity: 1 + rng.IntN(3), UnitPrice: p.price})
	}
	body, err := json.Marshal(req)
	if err != nil {
		return placed{}, err
	}

	start := time.Now()
	res, err := l.do(ctx, client, http.MethodPost, "/orders", body, nil, http.StatusCreated, nil)
	if err != nil {
		return placed{}, err
	}
	position := res.Get(PositionHeader)
	if position == "" {
		return placed{}, fmt.Errorf("POST /orders (order %s): no %s header in the answer", id, PositionHeader)
	}
	if _, err := l.do(ctx, client, http.MethodGet, "/orders/"+id, nil, http.Header{PositionHeader: {position}}, http.StatusOK, nil); err != nil {
		return placed{}, err
	}
	return placed{id: id, start: start, latency: time.Since(start)}, nil
}

// do sends a request with header, reads the whole answer, and checks its
// status. It returns the answer's header, and decodes its body into out
// unless out is nil.
func (l load) do(ctx context.Context, client *http.Client, method, path string, body []byte, header http.Header, status int, out any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, l.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.StatusCode != status {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return res.Header, nil
}

// confirmations reads the orders ids until the stock check has confirmed
// each, for at most wait in all, and returns for each order the time from
// its placing to its confirmation. Both times are the service's: the steps
// "pending" and "confirmed" of the order's timeline, which the service
// stamps when the POST arrives and when the stock check decides to confirm.
func (l load) confirmations(ctx context.Context, ids []string, wait time.Duration) ([]time.Duration, error) {
	client := newLoadClient(l.clients)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeoutCause(ctx, wait, fmt.Errorf("the stock check did not confirm the orders within %v (is the service running with -auto-confirm?)", wait))
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)

	out := make([]time.Duration, len(ids))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range l.clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				d, err := l.confirmation(ctx, client, ids[i])
				if err != nil {
					fail(err)
					return
				}
				out[i] = d
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// confirmation reads order id until it is confirmed, and returns the time
// from its placing to its confirmation, on the service's clock.
func (l load) confirmation(ctx context.Context, client *http.Client, id string) (time.Duration, error) {
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		var d readmodel.Detail
		if _, err := l.do(ctx, client, http.MethodGet, "/orders/"+id, nil, nil, http.StatusOK, &d); err != nil {
			return 0, err
		}
		var placedAt, confirmedAt time.Time
		for _, s := range d.Timeline {
			switch s.Status {
			case order.StatusPending:
				placedAt = s.At
			case order.StatusConfirmed:
				confirmedAt = s.At
			}
		}
		if !placedAt.IsZero() && !confirmedAt.IsZero() {
			return confirmedAt.Sub(placedAt), nil
		}
		if d.Status != order.StatusPending {
			return 0, fmt.Errorf("order %s is %s, not confirmed", id, d.Status)
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

// percentile returns the p-quantile (0 < p ≤ 1) of ds by the nearest-rank
// method, or 0 when ds is empty. It sorts ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// loadAverage returns the load averages over 1, 5 and 15 minutes from
// /proc/loadavg, or "" where there is none.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
