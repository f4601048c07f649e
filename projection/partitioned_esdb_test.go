package projection_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/eventfold/eventfold/projection"
)

// Two replicas share a partitioned projection on EventStoreDB, with their
// checkpoints, leases and membership in the event store itself
// (StreamCheckpoints): they split the partitions; then one is cut off
// from the store (its appends fail, as a killed or partitioned replica's
// would), and the other takes its partitions over once their leases have
// expired, while events keep coming. Checkpoints in the store are not
// committed with an in-memory read model, so a batch may be applied
// again after a takeover: no event is lost, and each stream's events
// arrive in order, from a revision already applied at worst.
func TestReplicasShareOnEventStoreDB(t *testing.T) {
	srv := esdbtest.New(t)
	open := func() es.Store {
		s, err := eventstoredb.Open(srv.ConnectionString(), eventstoredb.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	store := open()
	appendAccounts(t, store, 12, 60)
	l := newLedger()
	l.atLeastOnce = true
	replica := func(name string, s es.Store) *projection.Partitioned[projection.NoTx] {
		g, err := projection.NewPartitioned(s, streamCheckpoints(s, name), nil, l.projection("ledger", 4),
			projection.WithRebalance(20*time.Millisecond), projection.WithRestart(10*time.Millisecond, 50*time.Millisecond),
			projection.WithRetry(1, 0), projection.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		return g
	}
	cutA := &cuttable{Store: open()}
	a, b := replica("a", cutA), replica("b", open())
	runGroup(t, a)
	runGroup(t, b)
	waitFor(t, "the replicas split the partitions", func() bool {
		ra, rb := running(t, a), running(t, b)
		return len(ra) == 2 && len(rb) == 2
	})
	appendAccounts(t, store, 12, 30)

	cutA.off.Store(true)
	start := time.Now()
	waitFor(t, "the second replica takes every partition over", func() bool { return len(running(t, b)) == 4 })
	took := time.Since(start)
	t.Logf("taken over %v after the cut (lease time-to-live %v)", took.Round(time.Millisecond), streamTTL)
	assert.Less(t, took, 2*streamTTL+time.Second)
	appendAccounts(t, store, 12, 30)
	waitForAll(t, store, b)
	l.check(t, store)
}
