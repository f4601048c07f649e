//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/eventfold/eventfold/example/orders/readmodel"
)

// The tests in this file run "orders serve" as several processes of a
// binary built from this package, share the read models' partitions
// between them, place orders through all of them, kill one with SIGKILL,
// and check that nothing was lost or doubled.

// replicaLeaseTTL is the -lease-ttl of the replicas: a killed replica's
// partitions are taken over within about twice as long.
const replicaLeaseTTL = 2 * time.Second

// replicaAckWait is the -bus-ack-wait of the replicas on NATS: the
// commands and events under way in a killed replica are delivered to the
// others after it.
const replicaAckWait = 3 * time.Second

// buildOrders builds this package's binary into a directory of the test's
// own, and returns its path.
func buildOrders(t *testing.T) string {
	t.Helper()
	bin := t.TempDir() + "/orders"
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// replica is one "orders serve" process.
type replica struct {
	name   string
	url    string
	pid    int
	cmd    *exec.Cmd
	done   chan struct{} // closed once the process has exited
	stderr *lockedBuffer
}

// startReplica starts "orders serve" with args on a free port; ready
// waits until it serves HTTP.
func startReplica(t *testing.T, bin, name string, args ...string) (r *replica, ready func() *replica) {
	t.Helper()
	served := make(chan string, 1)
	r = &replica{name: name, done: make(chan struct{}), stderr: &lockedBuffer{}}
	r.cmd = exec.Command(bin, append([]string{"serve", "-addr", "127.0.0.1:0"}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = &lockedBuffer{served: served}, r.stderr
	require.NoError(t, r.cmd.Start())
	r.pid = r.cmd.Process.Pid
	go func() {
		_ = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("%s (pid %d) logged:\n%s", r.name, r.pid, tail(r.stderr.String(), 40))
		}
	})
	return r, func() *replica {
		t.Helper()
		select {
		case addr := <-served:
			r.url = "http://" + addr
		case <-r.done:
			t.Fatalf("%s exited before serving: %s", name, r.stderr.String())
		case <-time.After(20 * time.Second):
			t.Fatalf("%s does not serve within 20s", name)
		}
		return r
	}
}

// kill ends the process with SIGKILL: it gives nothing back.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGKILL))
	receive(t, r.done, r.name+" dies")
}

// stop ends the process gracefully (SIGTERM), or kills it after 15s.
func (r *replica) stop(t *testing.T) {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not stop within 15s of SIGTERM", r.name)
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// request sends a request with a bound of 15s; an error means no answer
// (a replica killed meanwhile).
func request(ctx context.Context, method, url, body string, header ...string) (httpAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return httpAnswer{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpAnswer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return httpAnswer{status: res.StatusCode, header: res.Header, body: string(b)}, err
}

// holderPID finds the pid in a lease holder's name.
var holderPID = regexp.MustCompile(`^\s+(order-[a-z]+/p\d+)\s+running elsewhere \(orders serve, pid (\d+) on `)

// partitionHolders runs "orders status" with args and returns the pid
// that holds each partition of the read models (none for a partition
// that no replica holds).
func partitionHolders(t *testing.T, bin string, args ...string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"status"}, args...)...).CombinedOutput()
	require.NoError(t, err, "orders status: %s", out)
	holders := make(map[string]int)
	for line := range strings.Lines(string(out)) {
		if m := holderPID.FindStringSubmatch(line); m != nil {
			holders[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	return holders
}

// waitHolders polls "orders status" until every partition of both read
// models is held, by the replicas rs and no other, each holding some; and
// returns how long that took.
func waitHolders(t *testing.T, bin string, args []string, rs ...*replica) time.Duration {
	t.Helper()
	start := time.Now()
	want := make([]int, len(rs))
	for i, r := range rs {
		want[i] = r.pid
	}
	slices.Sort(want)
	var holders map[string]int
	for {
		holders = partitionHolders(t, bin, args...)
		pids := slices.Sorted(maps.Keys(set(slices.Collect(maps.Values(holders)))))
		if len(holders) == 2*readmodel.Partitions && slices.Equal(pids, want) {
			return time.Since(start)
		}
		require.Less(t, time.Since(start), 20*time.Second, "the partitions are not shared by pids %v within 20s: %v", want, holders)
		time.Sleep(100 * time.Millisecond) // polling: each status is a process of its own
	}
}

func set[T comparable](s []T) map[T]bool {
	m := make(map[T]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}

// placedOrder is an order placed through a replica.
type placedOrder struct {
	id, customer string
	items        int
	position     string // the position header of its 201; "" if it was answered 409
}

// placers place orders through the live replicas, round robin, from
// several goroutines (each a customer of its own), until stopped. An
// attempt that gets no answer, or 5xx, is made again through another
// replica: 201 or 409 (placed by the earlier attempt) ends it.
type placers struct {
	t    *testing.T
	mu   sync.Mutex
	live []*replica
	next int
	done []placedOrder
	// retried counts the attempts that got no answer or 5xx.
	retried int
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startPlacers(t *testing.T, n int, live ...*replica) *placers {
	p := &placers{t: t, live: live, stop: make(chan struct{})}
	for g := range n {
		p.wg.Go(func() { p.run(fmt.Sprintf("cust-%d", g)) })
	}
	t.Cleanup(p.halt)
	return p
}

func (p *placers) run(customer string) {
	for i := 0; ; i++ {
		select {
		case <-p.stop:
			return
		default:
		}
		o := placedOrder{id: fmt.Sprintf("%s-%d", customer, i), customer: customer, items: 1 + i%3}
		var lines []string
		for k := range o.items {
			prod := seedProducts[k%len(seedProducts)]
			lines = append(lines, fmt.Sprintf(`{"productId":%q,"quantity":1,"unitPrice":%d}`, prod.id, prod.price))
		}
		body := fmt.Sprintf(`{"orderId":%q,"customerId":%q,"items":[%s]}`, o.id, customer, strings.Join(lines, ","))
		if !p.place(&o, body) {
			return
		}
		p.mu.Lock()
		p.done = append(p.done, o)
		p.mu.Unlock()
	}
}

// place places o, through one replica after another until one answers
// 201 or 409; false if the test ended first.
func (p *placers) place(o *placedOrder, body string) bool {
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		if p.t.Context().Err() != nil || time.Now().After(deadline) {
			p.t.Errorf("order %s: not placed within 30s", o.id)
			return false
		}
		p.mu.Lock()
		r := p.live[p.next%len(p.live)]
		p.next++
		p.mu.Unlock()
		res, err := request(p.t.Context(), "POST", r.url+"/orders", body)
		switch {
		case err == nil && res.status == http.StatusCreated:
			o.position = res.header.Get(PositionHeader)
			return true
		case err == nil && res.status == http.StatusConflict:
			// Placed by an earlier attempt, or by this one: its command
			// was delivered again after the replica that handled it
			// first died, and the second handling found the order.
			return true
		case err == nil && res.status < 500:
			p.t.Errorf("order %s through %s: %d %s", o.id, r.name, res.status, res.body)
			return false
		}
		// No answer (the replica died) or 5xx (its command handler died
		// under it): again, through the next replica.
		p.mu.Lock()
		p.retried++
		p.mu.Unlock()
	}
}

// count returns how many orders were placed so far.
func (p *placers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.done)
}

// waitMore waits until n more orders have been placed.
func (p *placers) waitMore(n int) {
	p.t.Helper()
	target := p.count() + n
	require.Eventually(p.t, func() bool { return p.count() >= target }, 20*time.Second, 10*time.Millisecond,
		"%d more orders placed", n)
}

// setLive sets the replicas that the next attempts go to.
func (p *placers) setLive(live ...*replica) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live = live
}

// halt stops the placers and returns the orders placed.
func (p *placers) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
}

// detail is the part of an order's details that the checks compare.
type detail struct {
	Status   string            `json:"status"`
	Items    []json.RawMessage `json:"items"`
	Timeline []struct {
		Status string `json:"status"`
	} `json:"timeline"`
	Version uint64 `json:"version"`
}

// checkOrders checks what the replicas rs answer about the orders placed,
// against the event store of a:
//   - each order reads back through every replica (read-your-writes: with
//     the position header of its placement when it has one), confirmed by
//     the stock check, once: its timeline is placed then confirmed, as its
//     stream is, with its items and its stream's version;
//   - each customer's list holds its orders once, with their item counts.
//
// A lost or doubled event shows in a timeline, a version, a count.
func checkOrders(t *testing.T, a *app, orders []placedOrder, rs ...*replica) {
	t.Helper()
	byCustomer := make(map[string]map[string]int) // customer → order → items
	for _, o := range orders {
		if byCustomer[o.customer] == nil {
			byCustomer[o.customer] = make(map[string]int)
		}
		byCustomer[o.customer][o.id] = o.items
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, o := range orders {
		events := streamOf(t, a, "order-"+o.id)
		for _, r := range rs {
			var d detail
			for {
				res, err := request(t.Context(), "GET", r.url+"/orders/"+o.id, "", PositionHeader, o.position)
				require.NoError(t, err)
				if o.position != "" {
					require.Equal(t, http.StatusOK, res.status, "order %s through %s, after its position: %s", o.id, r.name, res.body)
				}
				if res.status == http.StatusOK {
					require.NoError(t, json.Unmarshal([]byte(res.body), &d))
					if d.Status == "confirmed" {
						break
					}
				}
				require.True(t, time.Now().Before(deadline), "order %s through %s is not confirmed within 20s: %s", o.id, r.name, res.body)
				time.Sleep(20 * time.Millisecond) // polling: the stock check confirms it soon
				events = streamOf(t, a, "order-"+o.id)
			}
			require.Len(t, events, 2, "order %s: placed, then confirmed once", o.id)
			assert.Equal(t, []string{"OrderPlaced", "OrderConfirmed"}, []string{events[0].Type, events[1].Type})
			assert.Len(t, d.Items, o.items, "order %s through %s", o.id, r.name)
			assert.Len(t, d.Timeline, len(events), "order %s through %s: one step per event", o.id, r.name)
			assert.Equal(t, events[len(events)-1].Revision, d.Version, "order %s through %s", o.id, r.name)
		}
	}
	for customer, want := range byCustomer {
		for _, r := range rs {
			res, err := request(t.Context(), "GET", r.url+"/customers/"+customer+"/orders", "")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.status, res.body)
			var list []struct {
				OrderID   string `json:"orderId"`
				ItemCount int    `json:"itemCount"`
				Status    string `json:"status"`
			}
			require.NoError(t, json.Unmarshal([]byte(res.body), &list))
			got := make(map[string]int, len(list))
			for _, s := range list {
				assert.NotContains(t, got, s.OrderID, "%s listed twice through %s", s.OrderID, r.name)
				got[s.OrderID] = s.ItemCount
				assert.Equal(t, "confirmed", s.Status, s.OrderID)
			}
			assert.Equal(t, want, got, "the orders of %s through %s", customer, r.name)
		}
	}
}

// streamOf reads a stream of a's event store.
func streamOf(t *testing.T, a *app, stream string) []es.RecordedEvent {
	t.Helper()
	var events []es.RecordedEvent
	for ev, err := range a.store.ReadStream(t.Context(), stream, es.ReadStreamOptions{}) {
		require.NoError(t, err)
		events = append(events, ev)
	}
	return events
}

// TestReplicasOnPostgreSQLAndNATS runs the service as separate processes
// on one PostgreSQL database (events, read models, leases) and one NATS
// namespace: two replicas share the read models' partitions, a third
// joins, one is killed with SIGKILL while orders are placed through all
// of them, and the survivors take its partitions over within about twice
// the lease's time-to-live. Every order placed reads back through both
// survivors, confirmed once by the stock check, as the event store says.
func TestReplicasOnPostgreSQLAndNATS(t *testing.T) {
	pg := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if pg == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: no PostgreSQL for the replicas test")
	}
	natsURL := os.Getenv("EVENTFOLD_TEST_NATS")
	if natsURL == "" {
		t.Skip("EVENTFOLD_TEST_NATS is not set: no NATS JetStream for the replicas test")
	}
	bin := buildOrders(t)
	db := postgresSchema(t, pg)
	ns := "replicas-" + shortID()
	t.Cleanup(func() { deleteStreams(t, natsURL, "eventfold-"+ns+"-") })
	at := []string{"-postgres", db}
	args := slices.Concat(at, []string{"-nats", natsURL, "-bus-namespace", ns, "-lease-ttl", replicaLeaseTTL.String(),
		"-bus-ack-wait", replicaAckWait.String()})

	// Two replicas start at once on a fresh database.
	_, ready1 := startReplica(t, bin, "replica 1", args...)
	_, ready2 := startReplica(t, bin, "replica 2", args...)
	r1, r2 := ready1(), ready2()
	took := waitHolders(t, bin, at, r1, r2)
	t.Logf("two replicas share the partitions %v after serving", took.Round(time.Millisecond))

	p := startPlacers(t, 3, r1, r2)
	p.waitMore(10)
	_, ready3 := startReplica(t, bin, "replica 3", args...)
	r3 := ready3()
	p.setLive(r1, r2, r3)
	took = waitHolders(t, bin, at, r1, r2, r3)
	t.Logf("a third replica takes its share %v after serving", took.Round(time.Millisecond))
	p.waitMore(10)

	r1.kill(t)
	killed := time.Now()
	p.setLive(r2, r3)
	waitHolders(t, bin, at, r2, r3)
	takeover := time.Since(killed)
	t.Logf("the survivors took the killed replica's partitions over after %v (-lease-ttl %v)", takeover.Round(time.Millisecond), replicaLeaseTTL)
	assert.Less(t, takeover, 3*replicaLeaseTTL, "takeover within about twice the lease's time-to-live")
	p.waitMore(10)
	p.halt()

	a := openTestApp(t, infra{postgres: db}, slog.New(slog.DiscardHandler))
	t.Logf("%d orders placed (%d attempts made again)", len(p.done), p.retried)
	checkOrders(t, a, p.done, r2, r3)
}

// TestReplicasOnEventStoreDB runs the service as separate processes with
// the events and the bus on EventStoreDB (esdbtest, -bus-esdb: no relay,
// the event handlers' persistent subscription groups pinned by order) and
// the read models in PostgreSQL: two replicas are consumers of the
// groups, orders are placed through both, one is killed with SIGKILL, and
// every order reads back through the survivor, confirmed once.
func TestReplicasOnEventStoreDB(t *testing.T) {
	pg := os.Getenv("EVENTFOLD_TEST_POSTGRES")
	if pg == "" {
		t.Skip("EVENTFOLD_TEST_POSTGRES is not set: no PostgreSQL for the read models of the replicas test")
	}
	bin := buildOrders(t)
	srv := esdbtest.New(t)
	db := postgresSchema(t, pg)
	at := []string{"-postgres", db, "-esdb", srv.ConnectionString()}
	args := slices.Concat(at, []string{"-bus-esdb", "-lease-ttl", replicaLeaseTTL.String()})

	_, ready1 := startReplica(t, bin, "replica 1", args...)
	_, ready2 := startReplica(t, bin, "replica 2", args...)
	r1, r2 := ready1(), ready2()
	waitHolders(t, bin, at, r1, r2)

	store, err := eventstoredb.Open(srv.ConnectionString(), eventstoredb.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	stockCheck := eventstoredb.Group{Stream: eventstoredb.AllStream, Name: "events-stock-check"}
	require.Eventually(t, func() bool {
		info, err := store.GroupInfo(t.Context(), stockCheck)
		return err == nil && info.Consumers == 2 && info.Strategy == eventstoredb.Pinned
	}, 20*time.Second, 50*time.Millisecond, "both replicas consume the stock check's group, pinned")

	p := startPlacers(t, 3, r1, r2)
	p.waitMore(15)
	r1.kill(t)
	killed := time.Now()
	p.setLive(r2)
	waitHolders(t, bin, at, r2)
	takeover := time.Since(killed)
	t.Logf("the survivor took the killed replica's partitions over after %v (-lease-ttl %v)", takeover.Round(time.Millisecond), replicaLeaseTTL)
	assert.Less(t, takeover, 3*replicaLeaseTTL, "takeover within about twice the lease's time-to-live")
	p.waitMore(10)
	p.halt()
	info, err := store.GroupInfo(t.Context(), stockCheck)
	require.NoError(t, err)
	assert.Equal(t, 1, info.Consumers, "the killed replica left the group")

	a := openTestApp(t, infra{esdb: srv.ConnectionString(), postgres: db}, slog.New(slog.DiscardHandler))
	t.Logf("%d orders placed (%d attempts made again)", len(p.done), p.retried)
	checkOrders(t, a, p.done, r2)
}
