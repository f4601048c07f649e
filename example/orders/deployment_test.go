package main

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/example/orders/order"
)

// The deployment's ID is created once, in the store, and read back on later
// starts; another store has another. It is a valid bus namespace.
func TestDeploymentID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.db")
	first := sqliteApp(t, path)
	d, err := loadDeployment(t.Context(), first.store)
	require.NoError(t, err)
	require.NotEmpty(t, d.ID)
	assert.Nil(t, d.LastBus)
	_, err = bus.New(mustCommandTypes(t), first.types, bus.WithNamespace(d.ID))
	require.NoError(t, err, "the ID is a valid namespace")
	require.NoError(t, first.Close())

	again, err := loadDeployment(t.Context(), sqliteApp(t, path).store)
	require.NoError(t, err)
	assert.Equal(t, d.ID, again.ID, "read back on a later start")
	other, err := loadDeployment(t.Context(), memstore.MustNew())
	require.NoError(t, err)
	assert.NotEqual(t, d.ID, other.ID)
}

func mustCommandTypes(t *testing.T) *es.Registry {
	t.Helper()
	c, err := commandTypes()
	require.NoError(t, err)
	return c
}

// A serve without -nats on a deployment whose last serve used NATS warns,
// naming the commands that drain or discard what it left there.
func TestServeWarnsAboutMessagesLeftOnNATS(t *testing.T) {
	a := testApp(t, memstore.MustNew())
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	in := infra{data: "orders.db"}

	ns, err := prepareBus(t.Context(), a, in, "", logger)
	require.NoError(t, err)
	d, err := loadDeployment(t.Context(), a.store)
	require.NoError(t, err)
	assert.Equal(t, d.ID, ns, "the namespace is the deployment's ID by default")
	assert.Equal(t, useInProcess, d.LastBus.Transport)
	assert.Empty(t, logs.String(), "no NATS before")

	in.nats = "nats://127.0.0.1:4222"
	ns, err = prepareBus(t.Context(), a, in, "blue", logger)
	require.NoError(t, err)
	assert.Equal(t, "blue", ns, "-bus-namespace wins")
	assert.Empty(t, logs.String())

	in.nats = ""
	_, err = prepareBus(t.Context(), a, in, "", logger)
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "orders bus drain -nats URL -data orders.db -bus-namespace blue")
	assert.Contains(t, logs.String(), "orders bus discard -nats URL -yes")

	logs.Reset()
	_, err = prepareBus(t.Context(), a, in, "", logger)
	require.NoError(t, err)
	assert.Empty(t, logs.String(), "warned once: the last serve was in-process")
}

// Orders relayed to NATS that no serve consumed: bus drain handles them
// with the service's handlers (the stock check confirms the order), bus
// discard lists the streams, refuses without -yes, and deletes them with it.
func TestBusDrainAndDiscard(t *testing.T) {
	natsURL := os.Getenv("EVENTFOLD_TEST_NATS")
	if natsURL == "" {
		t.Skip("EVENTFOLD_TEST_NATS is not set: no NATS to leave messages on")
	}
	path := filepath.Join(t.TempDir(), "orders.db")
	a := sqliteApp(t, path)
	ns := "t" + strings.ReplaceAll(newDeploymentID()[1:], "-", "")
	t.Cleanup(func() {
		tr, err := jetstream.Open(natsURL, nil)
		if err == nil {
			_, _ = tr.DeleteStreams(context.Background(), "eventfold-"+ns+"-")
			_ = tr.Close()
		}
	})
	res, err := a.orders.Create(t.Context(), "left-1", order.Place(order.PlaceOrder{OrderID: "left-1", CustomerID: "alice",
		Items: []order.Item{{ProductID: "keyboard", Quantity: 1, UnitPrice: 4990}}, PlacedAt: time.Now()}))
	require.NoError(t, err)
	_ = res

	// A serve with -nats relayed the order, and stopped before its
	// handlers took it: a bus with the relay only.
	tr, err := jetstream.Open(natsURL, nil)
	require.NoError(t, err)
	relayBus, err := bus.New(mustCommandTypes(t), a.types, append(tr.Options(), bus.WithNamespace(ns))...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- relayBus.Run(ctx) }()
	<-relayBus.Running()
	var placed []es.RecordedEvent
	for e, err := range a.store.ReadStream(t.Context(), "order-left-1", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		placed = append(placed, e)
	}
	require.NoError(t, relayBus.Publish(t.Context(), placed...))
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, relayBus.Close())
	require.NoError(t, recordBusUse(t.Context(), a.store, useNATS, ns))
	require.NoError(t, a.Close())

	// Not beside a serve of the same file.
	var out, errs bytes.Buffer
	serving := sqliteApp(t, path)
	require.NoError(t, serving.serveAlone(t.Context(), path))
	code := run(t.Context(), []string{"bus", "drain", "-nats", natsURL, "-data", path, "-bus-namespace", ns}, &out, &errs)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs.String(), "served already")
	require.NoError(t, serving.Close())

	out.Reset()
	errs.Reset()
	code = run(t.Context(), []string{"bus", "drain", "-nats", natsURL, "-data", path, "-bus-namespace", ns, "-timeout", "1m"}, &out, &errs)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out.String(), errs.String())
	assert.Contains(t, out.String(), "drained namespace "+ns)
	b := sqliteApp(t, path)
	assert.Equal(t, []string{"OrderPlaced", "OrderConfirmed"}, eventTypes(t, b.store, "order-left-1"),
		"the stock check handled the order left on NATS")
	d, err := loadDeployment(t.Context(), b.store)
	require.NoError(t, err)
	assert.Equal(t, useDrained, d.LastBus.Transport)
	streams, err := tr.Streams(t.Context(), "eventfold-"+ns+"-")
	require.NoError(t, err)
	assert.Zero(t, jetstream.Pending(streams))
	require.NoError(t, b.Close())

	out.Reset()
	errs.Reset()
	code = run(t.Context(), []string{"bus", "discard", "-nats", natsURL, "-data", path, "-bus-namespace", ns}, &out, &errs)
	assert.Equal(t, 1, code)
	assert.Contains(t, out.String(), "would delete")
	assert.Contains(t, out.String(), "stream eventfold-"+ns+"-events")
	assert.Contains(t, errs.String(), "refusing to delete without -yes")
	streams, err = tr.Streams(t.Context(), "eventfold-"+ns+"-")
	require.NoError(t, err)
	assert.NotEmpty(t, streams, "nothing deleted without -yes")

	out.Reset()
	code = run(t.Context(), []string{"bus", "discard", "-nats", natsURL, "-data", path, "-bus-namespace", ns, "-yes"}, &out, &errs)
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out.String(), errs.String())
	assert.Contains(t, out.String(), "deleting")
	streams, err = tr.Streams(t.Context(), "eventfold-"+ns+"-")
	require.NoError(t, err)
	assert.Empty(t, streams)
	require.NoError(t, tr.Close())
}

// awayStore is a store whose reads fail, as EventStoreDB away does.
type awayStore struct{ es.Store }

var errAway = errors.New("event store away")

func (awayStore) ReadStream(context.Context, string, es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) { yield(es.RecordedEvent{}, errAway) }
}

// A serve whose event store is away at start goes on without the
// deployment's record, unless its bus on NATS needs the deployment's ID
// for its namespace.
func TestPrepareBusWithTheStoreAway(t *testing.T) {
	a := testApp(t, awayStore{memstore.MustNew()})
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ns, err := prepareBus(t.Context(), a, infra{data: "orders.db"}, "", logger)
	require.NoError(t, err, "in process: the namespace matters to nobody")
	assert.Empty(t, ns)
	assert.Contains(t, logs.String(), "serving without it")

	ns, err = prepareBus(t.Context(), a, infra{data: "orders.db", nats: "nats://127.0.0.1:4222"}, "blue", logger)
	require.NoError(t, err)
	assert.Equal(t, "blue", ns)

	_, err = prepareBus(t.Context(), a, infra{data: "orders.db", nats: "nats://127.0.0.1:4222"}, "", logger)
	require.ErrorIs(t, err, errAway)
	assert.ErrorContains(t, err, "-bus-namespace")
}
