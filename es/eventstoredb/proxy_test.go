package eventstoredb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/eventfold/eventfold/internal/faultproxy"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The tests in this file put a faultproxy between the store and an
// esdbtest server, and cut or stall the network between them.

// proxied starts an esdbtest server and a proxy in front of it, both
// closed by the returned function (call it before a goroutine-leak check),
// and returns the connection string through the proxy.
func proxied(t *testing.T) (srv *esdbtest.Server, p *faultproxy.Proxy, conn string, closeAll func()) {
	t.Helper()
	srv, err := esdbtest.Start()
	require.NoError(t, err)
	p, err = faultproxy.New(srv.Addr())
	require.NoError(t, err)
	return srv, p, "esdb://" + p.Addr() + "?tls=false", func() {
		p.Close()
		srv.Close()
	}
}

// timed runs f and returns how long it took.
func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// TestServerAwayAtStart creates the store while nothing gets through to
// the server (connections are reset, as on a dead address): calls fail fast
// with ErrUnavailable, bounded by the call timeout; once the network is
// back, the same store works.
func TestServerAwayAtStart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, p, conn, closeAll := proxied(t)
	defer closeAll()
	p.Cut()
	const callTimeout = 500 * time.Millisecond
	store, err := eventstoredb.Open(conn, eventstoredb.WithLogger(quiet), eventstoredb.WithCallTimeout(callTimeout))
	require.NoError(t, err)
	defer func() {
		require.NoError(t, store.Close())
		closeAll()
		eventstoredb.WaitConnecting(store)
	}()
	ctx := t.Context()
	stream := "order-" + uuid.NewString()
	appendOne := func() error {
		_, err := store.Append(ctx, stream, es.Any, es.EventData{Type: "Tick", Data: []byte(`{}`)})
		return err
	}

	// For longer than the client's own discovery lasts, and than the
	// store's backoff between connection attempts reaches.
	for outage := time.Now(); time.Since(outage) < 2500*time.Millisecond; {
		var err error
		d := timed(func() { err = appendOne() })
		require.ErrorIs(t, err, eventstoredb.ErrUnavailable)
		require.Less(t, d, callTimeout+time.Second, "an append while the server is away")

		d = timed(func() {
			for _, err := range store.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
				require.ErrorIs(t, err, eventstoredb.ErrUnavailable)
			}
		})
		require.Less(t, d, callTimeout+time.Second, "a read while the server is away")

		d = timed(func() {
			_, err := store.DeleteStream(ctx, stream, es.Any)
			require.ErrorIs(t, err, eventstoredb.ErrUnavailable)
			require.True(t, eventstoredb.IsTransient(err))
		})
		require.Less(t, d, callTimeout+time.Second, "a delete while the server is away")
	}
	assert.Zero(t, p.Dialed(), "nothing reached the server")

	p.Restore()
	appendRetrying(t, appendOne)
	var revs []uint64
	for ev, err := range store.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
		require.NoError(t, err)
		revs = append(revs, ev.Revision)
	}
	assert.Equal(t, []uint64{0}, revs)
	assert.Len(t, srv.Events(stream), 1)
}

// TestStallWhileSubscribedAndAppending stalls the network (connections
// stay open, bytes vanish) under a $all subscription and appends: the
// appends fail with ErrUnavailable within the call timeout; after the
// network is back, the subscription resumes from where it was, with no
// event lost or repeated. A second stall ends with the context's
// cancellation: the subscription and an append under way return at once,
// and so does Close.
func TestStallWhileSubscribedAndAppending(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, p, conn, closeAll := proxied(t)
	defer closeAll()
	const callTimeout = 500 * time.Millisecond
	// A connection attempt that the stall holds gives up after a second.
	store, err := eventstoredb.Open(conn+"&gossipTimeout=1", eventstoredb.WithLogger(quiet), eventstoredb.WithCallTimeout(callTimeout),
		eventstoredb.WithResubscribe(1000, 20*time.Millisecond))
	require.NoError(t, err)
	storeClosed := false
	defer func() {
		if !storeClosed {
			require.NoError(t, store.Close())
		}
		closeAll() // ends a connection attempt that a stall holds
		eventstoredb.WaitConnecting(store)
	}()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream := "order-" + uuid.NewString()
	got, ended := watchRevisions(store.SubscribeAll(ctx, es.SubscribeAllOptions{Filter: es.StreamPrefixes(stream)}))
	appendOne := func(ctx context.Context) error {
		_, err := store.Append(ctx, stream, es.Any, es.EventData{Type: "Tick", Data: []byte(`{}`)})
		return err
	}
	// delivered reads the subscription until it has delivered n events in
	// all, and checks that they are revisions 0 to n-1.
	var delivered []uint64
	waitDelivered := func(n int) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for len(delivered) < n {
			select {
			case rev := <-got:
				delivered = append(delivered, rev)
			case err := <-ended:
				t.Fatalf("the subscription ended: %v", err)
			case <-deadline:
				t.Fatalf("%d events delivered within 15s, want %d", len(delivered), n)
			}
		}
		for i, rev := range delivered {
			require.Equal(t, uint64(i), rev, "delivered in order, each once: %v", delivered)
		}
	}

	for range 3 {
		require.NoError(t, appendOne(ctx))
	}
	waitDelivered(3)

	p.Stall()
	// Appends under way and started during the stall fail within the call
	// timeout, for longer than the client's discovery and the store's
	// backoff last; once a connection attempt has failed, at once.
	failed, fast := 0, 0
	var last time.Duration // of the last append, well after the first attempt failed
	// Three seconds at least; up to eight while no append has failed at
	// once yet (a first connection attempt outlasts its gossip timeout on
	// a loaded machine).
	for outage := time.Now(); time.Since(outage) < 3*time.Second || fast == 0 && time.Since(outage) < 8*time.Second; {
		var err error
		last = timed(func() { err = appendOne(ctx) })
		require.ErrorIs(t, err, eventstoredb.ErrUnavailable)
		require.Less(t, last, callTimeout+time.Second, "an append during the stall")
		failed++
		if last < callTimeout/5 {
			fast++
		}
		time.Sleep(10 * time.Millisecond) // the pace of the appends
	}
	t.Logf("%d appends failed during the stall, %d of them at once", failed, fast)
	assert.Less(t, last, callTimeout/5, "an append once a connection attempt failed fails at once")
	select {
	case rev := <-got:
		t.Fatalf("the subscription delivered revision %d during the stall", rev)
	case err := <-ended:
		t.Fatalf("the subscription ended during the stall: %v", err)
	default:
	}

	p.Restore()
	appendRetrying(t, func() error { return appendOne(ctx) })
	require.NoError(t, appendOne(ctx))
	// What the server holds is the truth: an append that failed may have
	// been written, if only its answer was lost.
	n := len(srv.Events(stream))
	require.GreaterOrEqual(t, n, 5)
	waitDelivered(n)
	select {
	case rev := <-got:
		t.Fatalf("revision %d delivered again or out of nowhere; the stream has %d events", rev, n)
	case <-time.After(100 * time.Millisecond):
	}

	// A second stall, ended by the context: everything returns promptly,
	// with a connection attempt under way (the first append retires the
	// client, the second connects anew, and the stall holds its discovery).
	p.Stall()
	require.ErrorIs(t, appendOne(ctx), eventstoredb.ErrUnavailable)
	shortCtx, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	require.ErrorIs(t, appendOne(shortCtx), context.DeadlineExceeded)
	cancelShort()
	appending := make(chan error, 1)
	go func() { appending <- appendOne(ctx) }()
	var appendErr, subErr error
	d := timed(func() {
		cancel()
		appendErr = <-appending
		subErr = <-ended
	})
	assert.Less(t, d, 10*time.Second)
	t.Logf("the subscription and the append ended %v after the cancellation", d.Round(time.Millisecond))
	require.ErrorIs(t, subErr, context.Canceled)
	if appendErr != nil && !errors.Is(appendErr, context.Canceled) {
		// The append may have been answered before the stall took effect.
		t.Fatalf("the append under way: %v", appendErr)
	}
	// Close does not wait for the connection attempt that the stall holds.
	d = timed(func() { require.NoError(t, store.Close()) })
	storeClosed = true
	assert.Less(t, d, time.Second)
}
