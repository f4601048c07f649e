package redisproj_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/redisproj"
)

func at(n uint64) projection.Checkpoint {
	return projection.Checkpoint{Position: es.Position{Commit: n, Prepare: n}}
}

// sadd returns a commit's apply that adds id to the set rm of the test.
func sadd(ctx context.Context, key, id string) func(tx redisproj.Tx) error {
	return func(tx redisproj.Tx) error { return tx.Pipe.SAdd(ctx, key, id).Err() }
}

// Two Checkpoints on one Redis, as two processes would have: each writes
// a checkpoint only if it still holds what that one last saw.
func TestCommitFenced(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := testPrefix(t, client)
	a, c := newCheckpoints(t, client, prefix), newCheckpoints(t, client, prefix)
	rm := prefix + "rm"
	for _, cps := range []*redisproj.Checkpoints{a, c} {
		cp, err := cps.Load(ctx, "p/v1")
		require.NoError(t, err)
		require.Zero(t, cp)
	}
	require.NoError(t, a.Commit(ctx, "p/v1", at(1), sadd(ctx, rm, "1")))
	require.ErrorIs(t, c.Commit(ctx, "p/v1", at(1), sadd(ctx, rm, "2")), redisproj.ErrConflict, "c saw no checkpoint, a wrote one")
	cp, err := c.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, at(1), cp)
	require.ErrorIs(t, c.Commit(ctx, "p/v1", at(2), sadd(ctx, rm, "3")), projection.ErrFenced,
		"a Load without a lease (a Status) does not change what c expects")
	_, release, err := c.Lease(ctx, "p/v1")
	require.NoError(t, err)
	_, err = c.Load(ctx, "p/v1")
	require.NoError(t, err)
	require.NoError(t, c.Commit(ctx, "p/v1", at(2), sadd(ctx, rm, "3")), "a Load after a lease does")
	release()
	require.ErrorIs(t, a.Commit(ctx, "p/v1", at(2), sadd(ctx, rm, "4")), redisproj.ErrConflict)
	assert.ElementsMatch(t, []string{"1", "3"}, client.SMembers(ctx, rm).Val(), "the conflicting commits wrote nothing")

	// An error of apply discards the transaction and is returned as is.
	boom := errors.New("boom")
	_, err = a.Load(ctx, "q/v1")
	require.NoError(t, err)
	err = a.Commit(ctx, "q/v1", at(1), func(tx redisproj.Tx) error {
		tx.Pipe.SAdd(ctx, rm, "5")
		return boom
	})
	require.Equal(t, boom, err)
	assert.False(t, client.SIsMember(ctx, rm, "5").Val())
	cp, err = a.Load(ctx, "q/v1")
	require.NoError(t, err)
	assert.Zero(t, cp)

	// Forgetting a checkpoint (the zero Checkpoint) is not fenced.
	require.NoError(t, a.Commit(ctx, "p/v1", projection.Checkpoint{}, nil))
	cp, err = c.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Zero(t, cp)
	assert.Zero(t, client.Exists(ctx, prefix+"cp:p/v1").Val())

	// A checkpoint that is not one is an error, never a restart.
	require.NoError(t, client.HSet(ctx, prefix+"cp:bad/v1", "commit", "x").Err())
	_, err = a.Load(ctx, "bad/v1")
	require.ErrorIs(t, err, projection.ErrCorruptCheckpoint)
	require.NoError(t, client.Set(ctx, prefix+"cp:str/v1", "x", 0).Err())
	_, err = a.Load(ctx, "str/v1")
	require.ErrorIs(t, err, projection.ErrCorruptCheckpoint)
}

// A command that fails at run time in the MULTI/EXEC (Redis does not roll
// back) is reported, and the runner's next commit of the key is fenced
// rather than applying the batch twice.
func TestPartialCommit(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := testPrefix(t, client)
	cps := newCheckpoints(t, client, prefix)
	require.NoError(t, client.Set(ctx, prefix+"str", "x", 0).Err())
	_, err := cps.Load(ctx, "p/v1")
	require.NoError(t, err)
	apply := func(tx redisproj.Tx) error {
		tx.Pipe.SAdd(ctx, prefix+"set", "1")
		tx.Pipe.HSet(ctx, prefix+"str", "f", "v") // WRONGTYPE
		return nil
	}
	err = cps.Commit(ctx, "p/v1", at(1), apply)
	require.ErrorIs(t, err, redisproj.ErrPartialCommit)
	assert.Contains(t, err.Error(), "WRONGTYPE")
	require.ErrorIs(t, cps.Commit(ctx, "p/v1", at(1), apply), redisproj.ErrConflict)
	assert.Equal(t, int64(1), client.SCard(ctx, prefix+"set").Val())
}

// A replica whose lease was taken over cannot commit: its commit fails
// without writing, and its lease's context ends with ErrLeaseLost.
func TestLeaseTakeover(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := testPrefix(t, client)
	a := newCheckpoints(t, client, prefix, redisproj.WithLeaseHolder("replica-a"), redisproj.WithLeaseTTL(time.Second))
	b := newCheckpoints(t, client, prefix, redisproj.WithLeaseHolder("replica-b"), redisproj.WithLeaseTTL(time.Second))
	rm := prefix + "rm"

	heldA, releaseA, err := a.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer releaseA()
	holder, err := b.LeaseHolder(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, "replica-a", holder)
	_, err = a.Load(ctx, "p/v1")
	require.NoError(t, err)
	require.NoError(t, a.Commit(ctx, "p/v1", at(1), sadd(ctx, rm, "a1")))

	// b waits while a holds the lease.
	waitCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, _, err = b.Lease(waitCtx, "p/v1")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// a's lease expires (its process froze) and b takes it.
	require.NoError(t, client.Del(ctx, prefix+"lease:p/v1").Err())
	heldB, releaseB, err := b.Lease(ctx, "p/v1")
	require.NoError(t, err)
	cp, err := b.Load(ctx, "p/v1")
	require.NoError(t, err)
	require.Equal(t, at(1), cp)

	err = a.Commit(ctx, "p/v1", at(2), sadd(ctx, rm, "a2"))
	require.ErrorIs(t, err, projection.ErrFenced)
	require.ErrorIs(t, err, projection.ErrLeaseLost)
	require.NoError(t, b.Commit(ctx, "p/v1", at(2), sadd(ctx, rm, "b2")))
	assert.ElementsMatch(t, []string{"a1", "b2"}, client.SMembers(ctx, rm).Val())

	// a's renewal finds the lease taken: its context ends.
	select {
	case <-heldA.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a's lease did not end")
	}
	require.ErrorIs(t, context.Cause(heldA), projection.ErrLeaseLost)
	require.ErrorIs(t, a.Commit(ctx, "p/v1", at(3), nil), projection.ErrFenced)
	releaseA()
	assert.Equal(t, "replica-b", must(b.LeaseHolder(ctx, "p/v1")), "a's release leaves b's lease alone")

	// b's lease is renewed, past its time-to-live; released, a takes it
	// at once.
	renewals, last := 0, client.PTTL(ctx, prefix+"lease:p/v1").Val()
	eventually(t, "three renewals", func() bool {
		ttl := client.PTTL(ctx, prefix+"lease:p/v1").Val()
		if ttl > last {
			renewals++
		}
		last = ttl
		return renewals >= 3
	})
	require.NoError(t, heldB.Err())
	releaseB()
	require.ErrorIs(t, heldB.Err(), context.Canceled)
	assert.Empty(t, must(a.LeaseHolder(ctx, "p/v1")))
	_, releaseA2, err := a.Lease(ctx, "p/v1")
	require.NoError(t, err)
	releaseA2()
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Two runners of one projection on two Checkpoints: one builds, the other
// waits; when the first stops, the second takes over from its checkpoint.
func TestRunnerStandbyTakesOver(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := testPrefix(t, client)
	store := memstore.MustNew()
	for i := range 20 {
		add(t, store, "counter-a", i)
	}
	m := &totals{}
	r1 := newRunner(t, store, newCheckpoints(t, client, prefix, redisproj.WithLeaseHolder("one")), m.projection("totals"))
	cps2 := newCheckpoints(t, client, prefix, redisproj.WithLeaseHolder("two"))
	r2 := newRunner(t, store, cps2, m.projection("totals"))
	stop1 := start(t, r1)
	res := add(t, store, "counter-b", 1)
	require.NoError(t, r1.WaitFor(ctx, res.Position))
	stop2 := start(t, r2)
	eventually(t, "r2 standing by", func() bool {
		st, err := r2.Status(ctx)
		return err == nil && st.State == projection.StateStandby && st.Holder == "one"
	})
	require.NoError(t, stop1())
	res = add(t, store, "counter-b", 2)
	require.NoError(t, r2.WaitFor(ctx, res.Position))
	require.NoError(t, stop2())
	assert.Equal(t, replay(t, client, store), read(t, client, cps2.Prefix("totals", 1)))
}

// Replicas see each other through their memberships; one that leaves is
// gone at once, one that died drops out when its lease expires.
func TestMembership(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := testPrefix(t, client)
	a, b := newCheckpoints(t, client, prefix), newCheckpoints(t, client, prefix)
	leaveA, err := a.Join(ctx, "svc", "a")
	require.NoError(t, err)
	defer leaveA()
	leaveB, err := b.Join(ctx, "svc", "b")
	require.NoError(t, err)
	members, err := a.Members(ctx, "svc")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, members)
	leaveB()
	assert.Equal(t, []string{"a"}, must(b.Members(ctx, "svc")))

	// A member whose process died: its lease expires.
	require.NoError(t, client.Set(ctx, prefix+"lease:svc/members/dead", "{}", 200*time.Millisecond).Err())
	require.NoError(t, client.SAdd(ctx, prefix+"members:svc", "dead").Err())
	assert.Equal(t, []string{"a", "dead"}, must(a.Members(ctx, "svc")))
	eventually(t, "the dead member gone", func() bool {
		m, err := a.Members(ctx, "svc")
		return err == nil && len(m) == 1
	})
	assert.False(t, client.SIsMember(ctx, prefix+"members:svc", "dead").Val())

	// A membership lost (Redis lost it) is taken again.
	require.NoError(t, client.Del(ctx, prefix+"lease:svc/members/a", prefix+"members:svc").Err())
	eventually(t, "a back", func() bool {
		m, err := b.Members(ctx, "svc")
		return err == nil && len(m) == 1 && m[0] == "a"
	})
	leaveA()
	assert.Empty(t, must(b.Members(ctx, "svc")))
	_, err = a.Join(ctx, "", "x")
	require.Error(t, err)
}

// A partitioned projection's partitions are shared by the replicas that
// see each other, and together build the read model.
func TestPartitioned(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := testPrefix(t, client)
	store := memstore.MustNew()
	for i := range 60 {
		add(t, store, "counter-"+string(rune('a'+i%9)), i)
	}
	m := &totals{}
	p := m.projection("totals")
	p.Partitions = 4
	cps := newCheckpoints(t, client, prefix)
	g, err := projection.NewPartitioned(store, cps, types(t), p, projection.WithLogger(quiet))
	require.NoError(t, err)
	require.NoError(t, g.CatchUp(ctx))
	assert.Equal(t, replay(t, client, store), read(t, client, cps.Prefix("totals", 1)))
}

// A Redis that does not answer fails calls within the call timeout, as
// unavailable, never hanging; so does a closed client.
func TestUnreachable(t *testing.T) {
	redisURL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // accepted, never answered
			mu.Unlock()
		}
	})
	defer func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer client.Close()
	begin := time.Now()
	_, err = redisproj.New(t.Context(), client, redisproj.WithCallTimeout(200*time.Millisecond), redisproj.WithLogger(quiet))
	require.ErrorIs(t, err, projection.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(begin), 5*time.Second)

}

// cutter dials Redis for a client until it cuts the connections, as a
// network failure would; then dials fail until it mends them.
type cutter struct {
	addr  string
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (c *cutter) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused (cut by the test)")}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, c.addr)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

func (c *cutter) setCut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for _, conn := range c.conns {
			conn.Close()
		}
		c.conns = nil
	}
}

// cutCheckpoints returns checkpoints whose connections c cuts, and a
// client of the same Redis that c leaves alone.
func cutCheckpoints(t *testing.T, opts ...redisproj.Option) (c *cutter, cps *redisproj.Checkpoints, live *redis.Client) {
	t.Helper()
	live = newClient(t)
	o, err := redis.ParseURL(redisURL(t))
	require.NoError(t, err)
	c = &cutter{addr: o.Addr}
	o.Dialer, o.ContextTimeoutEnabled, o.MaxRetries = c.dial, true, 1
	client := redis.NewClient(o)
	t.Cleanup(func() { client.Close() })
	opts = append([]redisproj.Option{redisproj.WithCallTimeout(time.Second)}, opts...)
	return c, newCheckpoints(t, client, testPrefix(t, live), opts...), live
}

// A lost connection fails a commit, as unavailable, at once; the next
// commit after Redis is back succeeds.
func TestLostConnection(t *testing.T) {
	ctx := t.Context()
	c, cps, _ := cutCheckpoints(t)
	_, err := cps.Load(ctx, "p/v1")
	require.NoError(t, err)
	require.NoError(t, cps.Commit(ctx, "p/v1", at(1), nil))

	c.setCut(true)
	begin := time.Now()
	err = cps.Commit(ctx, "p/v1", at(2), nil)
	require.ErrorIs(t, err, projection.ErrUnavailable)
	_, err = cps.Load(ctx, "p/v1")
	require.ErrorIs(t, err, projection.ErrUnavailable)
	_, err = cps.ActiveVersion(ctx, "p")
	require.ErrorIs(t, err, projection.ErrUnavailable)
	assert.Less(t, time.Since(begin), 5*time.Second)

	c.setCut(false)
	require.NoError(t, cps.Commit(ctx, "p/v1", at(2), nil))
	cp, err := cps.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, at(2), cp)
}

// Invalid options and clients are reported together, at construction.
func TestNewInvalid(t *testing.T) {
	_, err := redisproj.New(t.Context(), nil, redisproj.WithPrefix(""), redisproj.WithLeaseTTL(time.Millisecond),
		redisproj.WithCallTimeout(0), redisproj.WithLeasePoll(-1), redisproj.WithLeaseHolder(""), redisproj.WithLogger(nil))
	require.ErrorIs(t, err, redisproj.ErrInvalidOption)
	for _, want := range []string{"nil client", "key prefix", "time-to-live", "call timeout", "poll", "holder", "logger"} {
		assert.Contains(t, err.Error(), want)
	}
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cluster.Close()
	_, err = redisproj.New(t.Context(), cluster)
	require.ErrorIs(t, err, redisproj.ErrInvalidOption)
}

// A runner whose connection to Redis is lost fails its batches as
// unavailable, starts again (WithRestart) and, once Redis answers again,
// catches up: nothing lost, nothing applied twice.
func TestRunnerSurvivesLostConnection(t *testing.T) {
	ctx := t.Context()
	c, cps, live := cutCheckpoints(t, redisproj.WithLeaseTTL(500*time.Millisecond))
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2)
	m := &totals{}
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithRestart(time.Millisecond, 50*time.Millisecond))
	stop := start(t, r)
	res := add(t, store, "counter-a", 3)
	require.NoError(t, r.WaitFor(ctx, res.Position))

	c.setCut(true)
	add(t, store, "counter-b", 4)
	eventually(t, "the runner failing", func() bool {
		st, err := r.Status(ctx)
		return err == nil && st.Err != nil
	})
	c.setCut(false)
	res = add(t, store, "counter-b", 5)
	require.NoError(t, r.WaitFor(ctx, res.Position))
	require.NoError(t, stop())
	assert.Equal(t, map[string]int64{"counter-a": 6, "counter-b": 9}, read(t, live, cps.Prefix("totals", 1)))
}

// Commits of a leased key go through while the heartbeat renews the lease
// under their WATCH: a renewal makes Redis discard the transaction, which
// Commit runs again.
func TestCommitsDuringRenewals(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := testPrefix(t, client)
	cps := newCheckpoints(t, client, prefix, redisproj.WithLeaseTTL(100*time.Millisecond))
	held, release, err := cps.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer release()
	_, err = cps.Load(ctx, "p/v1")
	require.NoError(t, err)
	renewals, last := 0, client.PTTL(ctx, prefix+"lease:p/v1").Val()
	n := uint64(0)
	for renewals < 10 {
		n++
		require.NoError(t, cps.Commit(ctx, "p/v1", at(n), func(tx redisproj.Tx) error {
			// Reads on the watching connection, a renewal may land here.
			if err := tx.Read.Get(ctx, prefix+"lease:p/v1").Err(); err != nil {
				return err
			}
			return tx.Pipe.Incr(ctx, prefix+"count").Err()
		}))
		if ttl := client.PTTL(ctx, prefix+"lease:p/v1").Val(); ttl > last {
			renewals++
		}
		last = client.PTTL(ctx, prefix+"lease:p/v1").Val()
	}
	require.NoError(t, held.Err())
	assert.Equal(t, int64(n), must(client.Get(ctx, prefix+"count").Int64()), "each commit applied once")
}
