package esdbbus_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/eventfold/eventfold/bus/bustest"
	"github.com/eventfold/eventfold/bus/esdbbus"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.DiscardHandler)

// newStore returns a Store on an in-process EventStoreDB of the test's own.
func newStore(t testing.TB) (*eventstoredb.Store, *esdbtest.Server) {
	t.Helper()
	srv := esdbtest.New(t)
	store, err := eventstoredb.Open(srv.ConnectionString(), eventstoredb.WithLogger(quiet),
		eventstoredb.WithResubscribe(20, 10*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return store, srv
}

func newTransport(t testing.TB, store *eventstoredb.Store, opts ...esdbbus.Option) *esdbbus.Transport {
	t.Helper()
	tr, err := esdbbus.New(store, append([]esdbbus.Option{esdbbus.WithLogger(quiet), esdbbus.WithRetryWait(50 * time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// TestBusSuite runs the bus's transport suite on the transport, each
// subtest on a server of its own.
func TestBusSuite(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bustest.Transport {
		store, _ := newStore(t)
		tr := newTransport(t, store, esdbbus.WithGroupSettings(eventstoredb.GroupSettings{MessageTimeout: 2 * time.Second}))
		return bustest.Transport{Publisher: tr.Publisher(), Subscribers: tr.SubscriberFactory, TopicPrefix: bustest.UniquePrefix()}
	}, bustest.Features{GuaranteedOrder: true, ConcurrentHandling: true})
}
