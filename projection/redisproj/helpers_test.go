package redisproj_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/redisproj"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(m.Run()) // a child of TestKillMidBatch, killed mid-run
	}
	goleak.VerifyTestMain(m)
}

// quiet is the logger of the tests' checkpoints and runners.
var quiet = slog.New(slog.DiscardHandler)

// redisURL returns EVENTFOLD_TEST_REDIS, or skips the test.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("EVENTFOLD_TEST_REDIS")
	if u == "" {
		t.Skip("EVENTFOLD_TEST_REDIS is not set: set it to a Redis URL (redis://127.0.0.1:6379/0) to run the Redis tests")
	}
	return u
}

// newClient returns a client of the test Redis, closed at the end of the
// test.
func newClient(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(redisURL(t))
	require.NoError(t, err)
	opts.ContextTimeoutEnabled = true
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	return client
}

// testPrefix returns a key prefix of the test's own, whose keys are
// deleted at the end of the test.
func testPrefix(t testing.TB, client *redis.Client) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "eftest:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() { flushPrefix(t, client, prefix) })
	return prefix
}

// flushPrefix deletes every key under prefix: what a Redis that restarted
// without persistence has lost, for the keys of one test.
func flushPrefix(t testing.TB, client *redis.Client, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 10*time.Second)
	defer cancel()
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	require.NoError(t, iter.Err())
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		require.NoError(t, client.Unlink(ctx, keys[:n]...).Err())
		keys = keys[n:]
	}
}

// newCheckpoints returns checkpoints under prefix, with short leases.
func newCheckpoints(t testing.TB, client redis.UniversalClient, prefix string, opts ...redisproj.Option) *redisproj.Checkpoints {
	t.Helper()
	cps, err := redisproj.New(t.Context(), client, append([]redisproj.Option{redisproj.WithPrefix(prefix),
		redisproj.WithLogger(quiet), redisproj.WithLeasePoll(10 * time.Millisecond), redisproj.WithLeaseTTL(2 * time.Second)}, opts...)...)
	require.NoError(t, err)
	return cps
}

// Added adds N to a counter stream's total. A negative N is a poison
// event for the test read model.
type Added struct {
	N int `json:"n"`
}

func types(t testing.TB) *es.Registry {
	t.Helper()
	r, err := es.NewRegistry(es.Type[Added]("Added"))
	require.NoError(t, err)
	return r
}

func add(t testing.TB, store es.Store, stream string, ns ...int) es.AppendResult {
	t.Helper()
	evs := make([]es.EventData, len(ns))
	for i, n := range ns {
		evs[i] = es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, n)}
	}
	res, err := store.Append(t.Context(), stream, es.Any, evs...)
	require.NoError(t, err)
	return res
}

// totals is the test read model: per stream, the sum of its events' N
// (the hash "totals"), and per event ID, how many times it was applied
// (the hash "applied"), so that an event applied twice shows.
type totals struct {
	// inHandler, if set, runs in the handler after half of a batch was
	// queued; its error fails the batch.
	inHandler func() error
}

func (m *totals) projection(name string) projection.Projection[redisproj.Tx] {
	return projection.Projection[redisproj.Tx]{
		Name:   name,
		Handle: m.handle,
		Reset:  redisproj.DeleteVersion,
		Drop:   redisproj.DeleteVersion,
	}
}

func (m *totals) handle(ctx context.Context, tx redisproj.Tx, b projection.Batch) error {
	for i, ev := range b.Events {
		if i == len(b.Events)/2 && m.inHandler != nil {
			if err := m.inHandler(); err != nil {
				return err
			}
		}
		a, ok := ev.Payload.(Added)
		if !ok {
			return fmt.Errorf("payload %T", ev.Payload)
		}
		if a.N < 0 {
			return errors.New("negative amount")
		}
		tx.Pipe.HIncrBy(ctx, tx.Key(b.Version, "totals"), ev.Stream, int64(a.N))
		tx.Pipe.HIncrBy(ctx, tx.Key(b.Version, "applied"), ev.ID.String(), 1)
	}
	return nil
}

// read returns the totals under the read model's prefix, and fails the
// test if an event was applied more than once.
func read(t testing.TB, client *redis.Client, prefix string) map[string]int64 {
	t.Helper()
	ctx := t.Context()
	applied, err := client.HGetAll(ctx, prefix+"applied").Result()
	require.NoError(t, err)
	for id, n := range applied {
		require.Equal(t, "1", n, "event %s applied %s times", id, n)
	}
	raw, err := client.HGetAll(ctx, prefix+"totals").Result()
	require.NoError(t, err)
	out := make(map[string]int64, len(raw))
	for k, v := range raw {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err)
		out[k] = n
	}
	return out
}

// replay builds the read model afresh from store, under a prefix of its
// own, and returns it: the reference a read model must equal.
func replay(t testing.TB, client *redis.Client, store es.Store) map[string]int64 {
	t.Helper()
	prefix := testPrefix(t, client)
	cps := newCheckpoints(t, client, prefix)
	m := &totals{}
	r := newRunner(t, store, cps, m.projection("check"), projection.WithBatch(1000, time.Millisecond))
	require.NoError(t, r.CatchUp(t.Context()))
	return read(t, client, cps.Prefix("check", 1))
}

func newRunner(t testing.TB, store es.Store, cps projection.Checkpoints[redisproj.Tx], p projection.Projection[redisproj.Tx], opts ...projection.Option) *projection.Runner[redisproj.Tx] {
	t.Helper()
	r, err := projection.NewRunner(store, cps, types(t), p, append([]projection.Option{projection.WithRetry(2, time.Millisecond), projection.WithLogger(quiet)}, opts...)...)
	require.NoError(t, err)
	return r
}

// start runs r in a goroutine owned by the test and returns the function
// that stops it and returns Run's error.
func start(t *testing.T, r *projection.Runner[redisproj.Tx]) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
