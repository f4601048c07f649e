package eventstoredb_test

import (
	"context"
	"iter"
	"net"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// deadAddress returns a connection string to a loopback port where nothing
// listens.
func deadAddress(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return "esdb://" + addr + "?tls=false"
}

// within fails the test unless f returns within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		t.Logf("%s returned after %v", what, time.Since(start).Round(time.Millisecond))
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

func TestSubscriptionOnADeadAddressGivesUpAfterItsAttempts(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store := open(t, deadAddress(t), eventstoredb.WithResubscribe(3, time.Millisecond))
	within(t, 10*time.Second, "subscription", func() {
		n := 0
		for _, err := range store.SubscribeAll(t.Context(), es.SubscribeAllOptions{From: es.Start}) {
			n++
			require.Error(t, err)
			assert.True(t, eventstoredb.IsTransient(err), "%v", err)
		}
		assert.Equal(t, 1, n)
	})
	require.NoError(t, store.Close())
	eventstoredb.WaitConnecting(store)
}

func TestCancelDuringAnOutageReturnsPromptly(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store := open(t, deadAddress(t), eventstoredb.WithResubscribe(1000, 10*time.Millisecond))

	ctx, cancel := context.WithCancel(t.Context())
	ended := make(chan error, 1)
	go func() {
		for _, err := range store.SubscribeAll(ctx, es.SubscribeAllOptions{From: es.Start}) {
			ended <- err
			return
		}
		ended <- nil
	}()
	// Let it fail and retry for a while, then cancel.
	appendCtx, cancelAppend := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelAppend()
	_, _ = store.Append(appendCtx, "order-1", es.Any, es.EventData{Type: "X", Data: []byte(`{}`)})
	cancel()
	select {
	case err := <-ended:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * time.Second):
		t.Fatal("the subscription did not end within 2s of its cancellation")
	}

	// A call whose context is cancelled while it waits returns at once.
	callCtx, cancelCall := context.WithCancel(t.Context())
	go func() { cancelCall() }()
	within(t, 2*time.Second, "cancelled append", func() {
		_, err := store.Append(callCtx, "order-1", es.Any, es.EventData{Type: "X", Data: []byte(`{}`)})
		require.Error(t, err)
	})
	require.NoError(t, store.Close())
	eventstoredb.WaitConnecting(store)
}

// TestSubscriptionSurvivesAServerRestart stops the server for longer than
// the client's own discovery gives up after (about a second), starts it
// again on the same address, and expects the subscription and appends to
// resume by themselves.
func TestSubscriptionSurvivesAServerRestart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, err := esdbtest.Start()
	require.NoError(t, err)
	addr := srv.Addr()
	conn := srv.ConnectionString()
	store := open(t, conn, eventstoredb.WithResubscribe(1000, 20*time.Millisecond), eventstoredb.WithCallTimeout(time.Second))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream := "order-" + uuid.NewString()

	got, ended := watchRevisions(store.SubscribeStream(ctx, stream, es.SubscribeStreamOptions{}))
	appendOne := func() error {
		_, err := store.Append(ctx, stream, es.Any, es.EventData{Type: "Tick", Data: []byte(`{}`)})
		return err
	}
	require.NoError(t, appendOne())
	requireEvent(t, got, ended, 0)

	srv.Close()
	// While the server is away, appends fail fast with a transient error,
	// for longer than the client's discovery would last.
	outage := time.Now()
	for time.Since(outage) < 1500*time.Millisecond {
		err := appendOne()
		require.Error(t, err)
		require.True(t, eventstoredb.IsTransient(err), "%v", err)
	}

	// The data is gone with the in-memory server: a new one on the same
	// address is a new node, so write from revision 0 again.
	srv2, err := esdbtest.Start(esdbtest.WithAddress(addr))
	require.NoError(t, err)
	defer srv2.Close()

	// The subscription resumes after revision 0, which the new node has
	// once the first append after the outage succeeded.
	appendRetrying(t, appendOne)
	require.NoError(t, appendOne())
	requireEvent(t, got, ended, 1)
	cancel()
	require.ErrorIs(t, <-ended, context.Canceled)
	require.NoError(t, store.Close())
	eventstoredb.WaitConnecting(store)
	srv2.Close()
}

// TestSubscriptionSurvivesRestart uses esdbtest's Restart, which keeps the
// data: the subscription delivers what is appended after, once.
func TestSubscriptionSurvivesRestart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv, err := esdbtest.Start()
	require.NoError(t, err)
	defer srv.Close()
	store := open(t, srv.ConnectionString(), eventstoredb.WithResubscribe(1000, 20*time.Millisecond))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream := "order-" + uuid.NewString()
	got, ended := watchRevisions(store.SubscribeAll(ctx, es.SubscribeAllOptions{Filter: es.StreamPrefixes(stream)}))
	appendOne := func() error {
		_, err := store.Append(ctx, stream, es.Any, es.EventData{Type: "Tick", Data: []byte(`{}`)})
		return err
	}
	for i := range 3 {
		appendRetrying(t, appendOne)
		requireEvent(t, got, ended, uint64(i))
		require.NoError(t, srv.Restart())
	}
	appendRetrying(t, appendOne)
	requireEvent(t, got, ended, 3)
	cancel()
	require.ErrorIs(t, <-ended, context.Canceled)
	require.NoError(t, store.Close())
	eventstoredb.WaitConnecting(store)
	srv.Close()
}

func requireEvent(t *testing.T, got <-chan uint64, ended <-chan error, want uint64) {
	t.Helper()
	select {
	case rev := <-got:
		require.Equal(t, want, rev)
	case err := <-ended:
		t.Fatalf("the subscription ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatalf("event %d not delivered within 15s", want)
	}
}

// appendRetrying retries a transient failure of appendOne for up to 15s.
func appendRetrying(t *testing.T, appendOne func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for err := appendOne(); err != nil; err = appendOne() {
		require.True(t, eventstoredb.IsTransient(err), "%v", err)
		require.True(t, time.Now().Before(deadline), "appends did not recover: %v", err)
	}
}

// TestCallsToAHangingNodeAreBounded stalls the network from the start:
// the node accepts connections and never answers, and the client then
// blocks in its discovery, whatever the caller's context.
func TestCallsToAHangingNodeAreBounded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	_, p, conn, closeAll := proxied(t)
	defer closeAll()
	p.Stall()
	store := open(t, conn, eventstoredb.WithCallTimeout(200*time.Millisecond))

	within(t, 2*time.Second, "append bounded by the call timeout", func() {
		_, err := store.Append(t.Context(), "order-1", es.Any, es.EventData{Type: "X", Data: []byte(`{}`)})
		require.ErrorIs(t, err, eventstoredb.ErrUnavailable)
	})

	ctx, cancel := context.WithCancel(t.Context())
	ended := make(chan error, 1)
	go func() {
		for _, err := range store.SubscribeAll(ctx, es.SubscribeAllOptions{From: es.Start}) {
			ended <- err
			return
		}
		ended <- nil
	}()
	cancel()
	select {
	case err := <-ended:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * time.Second):
		t.Fatal("the subscription did not end within 2s of its cancellation")
	}
	within(t, time.Second, "close", func() { require.NoError(t, store.Close()) })
	closeAll() // ends the connection attempt that the stall holds
	eventstoredb.WaitConnecting(store)
}

// watchRevisions reads a subscription in a goroutine: got receives the
// revision of each event, ended the subscription's final error (nil if it
// ended without one).
func watchRevisions(msgs iter.Seq2[es.Message, error]) (got chan uint64, ended chan error) {
	got, ended = make(chan uint64, 100), make(chan error, 1)
	go func() {
		for m, err := range msgs {
			if err != nil {
				ended <- err
				return
			}
			if m.Kind == es.KindEvent {
				got <- m.Event.Revision
			}
		}
		ended <- nil
	}()
	return got, ended
}
