package kurrentdb_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/kurrentdb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCallsOnADeadAddressAreTransient(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	store := open(t, "kurrentdb://"+addr+"?tls=false", kurrentdb.WithResubscribe(2, time.Millisecond))

	_, err = store.Append(t.Context(), "order-1", es.Any, es.EventData{Type: "X", Data: []byte(`{}`)})
	require.Error(t, err)
	assert.True(t, kurrentdb.IsTransient(err), "%v", err)
	n := 0
	for _, err := range store.SubscribeAll(t.Context(), es.SubscribeAllOptions{From: es.Start}) {
		n++
		assert.True(t, kurrentdb.IsTransient(err), "%v", err)
	}
	assert.Equal(t, 1, n, "one error after the attempts")
	require.NoError(t, store.Close())
	kurrentdb.WaitConnecting(store)
}

// TestSubscriptionSurvivesAServerRestart kills the server, starts it again
// on the same address and data directory, and expects the subscription
// and appends to resume by themselves, without an event twice.
func TestSubscriptionSurvivesAServerRestart(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, "25.0.0", "-data", data)
	addr := srv.addr(t)
	store := open(t, srv.conn, kurrentdb.WithResubscribe(1000, 20*time.Millisecond), kurrentdb.WithCallTimeout(time.Second))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream := "order-" + uuid.NewString()
	appendOne := func() error {
		_, err := store.Append(ctx, stream, es.Any, es.EventData{Type: "Tick", Data: []byte(`{}`)})
		return err
	}
	require.NoError(t, appendOne())

	got := make(chan uint64, 16)
	done := make(chan error, 1)
	go func() {
		for m, err := range store.SubscribeStream(ctx, stream, es.SubscribeStreamOptions{}) {
			if err != nil {
				done <- err
				return
			}
			if m.Kind == es.KindEvent {
				got <- m.Event.Revision
			}
		}
		done <- nil
	}()
	next := func() uint64 {
		t.Helper()
		select {
		case rev := <-got:
			return rev
		case err := <-done:
			t.Fatalf("the subscription ended: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("no event within 20s")
		}
		return 0
	}
	require.Equal(t, uint64(0), next())

	srv.stop()
	err := appendOne()
	require.Error(t, err)
	require.True(t, kurrentdb.IsTransient(err), "%v", err)

	startServerAt(t, addr, "25.0.0", "-data", data)
	deadline := time.Now().Add(20 * time.Second)
	for err := appendOne(); err != nil; err = appendOne() {
		require.True(t, kurrentdb.IsTransient(err), "%v", err)
		require.True(t, time.Now().Before(deadline), "no append succeeded within 20s of the restart: %v", err)
	}
	assert.Equal(t, uint64(1), next(), "the subscription resumes after the last event it delivered")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}
