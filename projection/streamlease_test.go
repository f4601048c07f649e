package projection_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// onStores runs a test of StreamCheckpoints on memstore and on
// EventStoreDB's protocol (esdbtest through the real client).
func onStores(t *testing.T, test func(t *testing.T, store es.Store)) {
	t.Run("memstore", func(t *testing.T) { test(t, memstore.MustNew()) })
	t.Run("eventstoredb", func(t *testing.T) {
		srv := esdbtest.New(t)
		store, err := eventstoredb.Open(srv.ConnectionString(), eventstoredb.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = store.Close() })
		test(t, store)
	})
}

// cuttable is a store whose appends fail while it is cut off, as a
// holder's would when it cannot reach its store.
type cuttable struct {
	es.Store
	off atomic.Bool
}

func (c *cuttable) Append(ctx context.Context, stream string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	if c.off.Load() {
		return es.AppendResult{}, es.ErrUnavailable
	}
	return c.Store.Append(ctx, stream, expected, events...)
}

const streamTTL = 300 * time.Millisecond

func streamCheckpoints(store es.Store, holder string) *projection.StreamCheckpoints {
	cps, err := projection.NewStreamCheckpoints(store, projection.WithStreamLeaseTTL(streamTTL),
		projection.WithStreamLeaseHolder(holder), projection.WithStreamLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	return cps
}

func at(n uint64) projection.Checkpoint {
	return projection.Checkpoint{Position: es.Position{Commit: n, Prepare: n}, Partitions: 2}
}

// Two contenders: one holds, its renewals keep the lease past several
// time-to-lives; cut off from the store, it counts its lease lost, the
// other takes it over after the time-to-live, and the old holder's commit
// is fenced.
func TestStreamLeaseTakeover(t *testing.T) { onStores(t, testStreamLeaseTakeover) }

func testStreamLeaseTakeover(t *testing.T, store es.Store) {
	ctx := t.Context()
	viaA := &cuttable{Store: store}
	a, b := streamCheckpoints(viaA, "a"), streamCheckpoints(store, "b")

	heldA, releaseA, err := a.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer releaseA()
	require.NoError(t, a.Commit(ctx, "p/v1", at(1), nil))
	holder, err := b.LeaseHolder(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, "a", holder)

	short, cancel := context.WithTimeout(ctx, 4*streamTTL)
	_, _, err = b.Lease(short, "p/v1")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "renewed, a's lease is not taken over")
	require.NoError(t, heldA.Err())

	viaA.off.Store(true)
	cutAt := time.Now()
	heldB, releaseB, err := b.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer releaseB()
	assert.GreaterOrEqual(t, time.Since(cutAt), streamTTL*2/3, "not before a's lease expired")
	select {
	case <-heldA.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a did not count its lease lost")
	}
	require.ErrorIs(t, context.Cause(heldA), projection.ErrLeaseLost)
	require.NoError(t, heldB.Err())

	viaA.off.Store(false)
	applied := false
	err = a.Commit(ctx, "p/v1", at(2), func(projection.NoTx) error { applied = true; return nil })
	require.ErrorIs(t, err, projection.ErrFenced, "a lost lease commits nothing")
	require.ErrorIs(t, err, projection.ErrLeaseLost)
	assert.False(t, applied, "nor applies its batch")

	cp, err := b.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, at(1), cp, "the checkpoint survives the takeover")
	require.NoError(t, b.Commit(ctx, "p/v1", at(3), nil))
	cp, err = a.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, at(3), cp)
	holder, err = a.LeaseHolder(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, "b", holder)
}

// A holder whose lease another took over while it was paused finds out at
// its next append, and its commit is fenced.
func TestStreamLeaseFencedByExpectedRevision(t *testing.T) {
	onStores(t, testStreamLeaseFencedByExpectedRevision)
}

func testStreamLeaseFencedByExpectedRevision(t *testing.T, store es.Store) {
	ctx := t.Context()
	a := streamCheckpoints(store, "a")
	heldA, releaseA, err := a.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer releaseA()
	// Another writes the stream behind a's back (a holder that took over).
	_, err = store.Append(ctx, projection.CheckpointStreamPrefix+"p/v1", es.Any,
		es.EventData{Type: projection.CheckpointEventType, Data: []byte(`{"position":{"commit":5,"prepare":5},"holder":"x","instance":"y"}`)})
	require.NoError(t, err)
	err = a.Commit(ctx, "p/v1", at(2), nil)
	require.ErrorIs(t, err, projection.ErrFenced)
	require.ErrorIs(t, err, projection.ErrLeaseLost)
	select {
	case <-heldA.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a did not count its lease lost")
	}
	require.ErrorIs(t, context.Cause(heldA), projection.ErrLeaseLost)
}

// Of two contenders at once, one holds the lease; once it gives it back,
// the other takes it at once, not after the time-to-live. A lease given
// back is taken again at once by the same value too.
func TestStreamLeaseContendAndRelease(t *testing.T) { onStores(t, testStreamLeaseContendAndRelease) }

func testStreamLeaseContendAndRelease(t *testing.T, store es.Store) {
	ctx := t.Context()
	a, b := streamCheckpoints(store, "a"), streamCheckpoints(store, "b")
	type grant struct {
		who     string
		release func()
	}
	granted := make(chan grant, 2)
	var wg sync.WaitGroup
	for who, cps := range map[string]*projection.StreamCheckpoints{"a": a, "b": b} {
		wg.Go(func() {
			_, release, err := cps.Lease(ctx, "p/v1")
			if assert.NoError(t, err) {
				granted <- grant{who, release}
			}
		})
	}
	first := <-granted
	select {
	case second := <-granted:
		second.release()
		t.Fatalf("both %s and %s hold the lease", first.who, second.who)
	case <-time.After(2 * streamTTL):
	}
	released := time.Now()
	first.release()
	second := <-granted
	wg.Wait()
	assert.Less(t, time.Since(released), streamTTL, "a lease given back is free at once")
	assert.NotEqual(t, first.who, second.who)
	second.release()

	cps := a
	if second.who == "b" {
		cps = b
	}
	for range 2 {
		start := time.Now()
		_, release, err := cps.Lease(ctx, "p/v1")
		require.NoError(t, err)
		release()
		assert.Less(t, time.Since(start), streamTTL)
	}
}

// Invalid options are refused at construction, all of them.
func TestStreamCheckpointsInvalidOptions(t *testing.T) {
	_, err := projection.NewStreamCheckpoints(memstore.MustNew(), projection.WithStreamLeaseTTL(time.Millisecond),
		projection.WithStreamLeaseHolder(""), projection.WithStreamLogger(nil))
	require.ErrorIs(t, err, projection.ErrInvalidOption)
	for _, want := range []string{"time-to-live", "holder", "logger"} {
		assert.ErrorContains(t, err, want)
	}
	_, err = projection.NewStreamCheckpoints(nil)
	require.ErrorIs(t, err, projection.ErrInvalidOption)
}

// Members join, see each other and leave; one that stops its heartbeats
// without leaving (a killed process) drops out after the time-to-live.
func TestStreamMembership(t *testing.T) { onStores(t, testStreamMembership) }

func testStreamMembership(t *testing.T, store es.Store) {
	ctx := t.Context()
	a, b := streamCheckpoints(store, "a"), streamCheckpoints(store, "b")
	members := func(group string) []string {
		t.Helper()
		got, err := b.Members(ctx, group)
		require.NoError(t, err)
		return got
	}
	assert.Empty(t, members("svc"))

	// The last heartbeat of a member whose process was killed.
	data, err := json.Marshal(map[string]string{"member": "ghost"})
	require.NoError(t, err)
	_, err = store.Append(ctx, projection.MembersStreamPrefix+"svc", es.Any, es.EventData{Type: projection.MemberEventType, Data: data})
	require.NoError(t, err)
	leaveA, err := a.Join(ctx, "svc", "a")
	require.NoError(t, err)
	defer leaveA()
	leaveB, err := b.Join(ctx, "svc", "b")
	require.NoError(t, err)
	defer leaveB()
	leaveX, err := b.Join(ctx, "other", "x")
	require.NoError(t, err)
	defer leaveX()
	assert.Equal(t, []string{"a", "b", "ghost"}, members("svc"))
	assert.Equal(t, []string{"x"}, members("other"))

	require.Eventually(t, func() bool {
		got, err := a.Members(ctx, "svc")
		return err == nil && assert.ObjectsAreEqual([]string{"a", "b"}, got)
	}, 10*streamTTL, 10*time.Millisecond, "the ghost drops out")

	// Renewed: a and b stay for several time-to-lives.
	deadline := time.Now().Add(4 * streamTTL)
	for time.Now().Before(deadline) {
		require.Equal(t, []string{"a", "b"}, members("svc"))
		time.Sleep(streamTTL / 5) // sampling over time, not waiting for an event
	}

	leaveA()
	leaveA()
	assert.Equal(t, []string{"b"}, members("svc"), "gone at once")

	joinCtx, end := context.WithCancel(ctx)
	_, err = a.Join(joinCtx, "svc", "c")
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "c"}, members("svc"))
	end()
	require.Eventually(t, func() bool {
		got, err := a.Members(ctx, "svc")
		return err == nil && assert.ObjectsAreEqual([]string{"b"}, got)
	}, 5*time.Second, 10*time.Millisecond, "ending Join's context leaves")

	_, err = a.Join(ctx, "", "m")
	require.Error(t, err)
}
