package aggregate_test

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newRepo(t testing.TB, store es.Store, opts ...aggregate.Option) *aggregate.Repository[Account, Event] {
	t.Helper()
	repo, err := aggregate.New(store, accountTypes(), accountDef, opts...)
	require.NoError(t, err)
	return repo
}

func TestNewValidates(t *testing.T) {
	_, err := aggregate.New[Account, Event](nil, nil, aggregate.Definition[Account, Event]{Category: "bad-name"},
		aggregate.WithRetry(0, time.Millisecond), aggregate.WithSnapshots(nil, 0, ""))
	require.ErrorIs(t, err, aggregate.ErrInvalidOption)
	for _, want := range []string{"nil store", "nil registry", `category "bad-name"`, "nil Evolve", "retry attempts 0", "nil snapshot store"} {
		assert.ErrorContains(t, err, want)
	}
}

func TestCreateLoadUpdate(t *testing.T) {
	ctx := t.Context()
	repo := newRepo(t, memstore.MustNew())

	res, err := repo.Create(ctx, "1", open("ada"))
	require.NoError(t, err)
	assert.Equal(t, uint64(0), res.Version)
	assert.Equal(t, Account{Owner: "ada", Events: 1}, res.State)
	assert.Equal(t, []Event{Opened{Owner: "ada"}}, res.Events)
	assert.False(t, res.Position.IsZero())

	assert.Equal(t, 1, res.Attempts)

	res, err = repo.Update(ctx, "1", deposit(50))
	require.NoError(t, err)
	assert.Equal(t, 1, res.Attempts)
	assert.Equal(t, uint64(1), res.Version)
	assert.Equal(t, 50, res.State.Balance)

	state, version, err := repo.Load(ctx, "1")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), version)
	assert.Equal(t, Account{Owner: "ada", Balance: 50, Events: 2}, state)
}

func TestNotFoundAndAlreadyExists(t *testing.T) {
	ctx := t.Context()
	repo := newRepo(t, memstore.MustNew())

	_, _, err := repo.Load(ctx, "missing")
	require.ErrorIs(t, err, aggregate.ErrNotFound)
	called := false
	_, err = repo.Update(ctx, "missing", func(Account) ([]Event, error) { called = true; return nil, nil })
	require.ErrorIs(t, err, aggregate.ErrNotFound)
	assert.False(t, called, "the decider must not run for a missing aggregate")

	_, err = repo.Create(ctx, "1", open("ada"))
	require.NoError(t, err)
	_, err = repo.Create(ctx, "1", open("bob"))
	require.ErrorIs(t, err, aggregate.ErrAlreadyExists)
	require.ErrorIs(t, err, es.ErrWrongExpectedVersion)
	assert.EqualError(t, err, `aggregate: already exists: stream "account-1" is at revision 0`)
}

func TestPointerEventsAreRejected(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	types, err := es.NewRegistry(es.Type[Opened]("AccountOpened"))
	require.NoError(t, err)
	repo, err := aggregate.New(store, types, aggregate.Definition[Account, any]{
		Category: "account",
		Evolve:   func(a Account, e any) Account { a.Events++; return a },
	})
	require.NoError(t, err)
	_, err = repo.Create(ctx, "1", func(Account) ([]any, error) { return []any{&Opened{Owner: "ada"}}, nil })
	require.ErrorContains(t, err, "event 0 is a *aggregate_test.Opened: deciders return event values, not pointers")
	_, _, err = repo.Load(ctx, "1")
	require.ErrorIs(t, err, aggregate.ErrNotFound, "nothing was written")
}

func TestDecideWithoutEventsAppendsNothing(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	repo := newRepo(t, store)
	_, err := repo.Create(ctx, "1", open("ada"))
	require.NoError(t, err)
	res, err := repo.Update(ctx, "1", func(Account) ([]Event, error) { return nil, nil })
	require.NoError(t, err)
	assert.Equal(t, uint64(0), res.Version)
	assert.True(t, res.Position.IsZero())
	assert.Equal(t, 1, count(t, store.ReadStream(ctx, "account-1", es.ReadStreamOptions{})))
}

func TestDomainErrorsReachTheCallerUnwrapped(t *testing.T) {
	ctx := t.Context()
	repo := newRepo(t, memstore.MustNew())
	_, err := repo.Create(ctx, "1", open("ada"))
	require.NoError(t, err)

	_, err = repo.Update(ctx, "1", withdraw(10))
	require.ErrorIs(t, err, ErrInsufficientFunds)
	assert.Equal(t, "account: insufficient funds: balance 0, withdrawing 10", err.Error())

	sentinel := errors.New("exactly this error")
	_, err = repo.Update(ctx, "1", func(Account) ([]Event, error) { return nil, sentinel })
	assert.Same(t, sentinel, err)
	_, err = repo.Create(ctx, "2", func(Account) ([]Event, error) { return nil, sentinel })
	assert.Same(t, sentinel, err)
}

func TestInvalidIDs(t *testing.T) {
	ctx := t.Context()
	repo := newRepo(t, memstore.MustNew())
	for _, id := range []string{"", strings.Repeat("x", es.MaxNameLength), "bad\x00id"} {
		_, _, err := repo.Load(ctx, id)
		require.ErrorIs(t, err, es.ErrInvalidArgument, "Load(%.20q)", id)
		_, err = repo.Create(ctx, id, open("ada"))
		require.ErrorIs(t, err, es.ErrInvalidArgument, "Create(%.20q)", id)
		_, err = repo.Update(ctx, id, deposit(1))
		require.ErrorIs(t, err, es.ErrInvalidArgument, "Update(%.20q)", id)
	}
}

func TestBadStoredEvents(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	repo := newRepo(t, store)
	_, err := repo.Create(ctx, "1", open("ada"))
	require.NoError(t, err)

	for name, ev := range map[string]es.EventData{
		"unknown type":    {Type: "AccountRenamed", Data: []byte(`{}`)},
		"bad payload":     {Type: "MoneyDeposited", Data: []byte(`{"amount": "ten"}`)},
		"truncated JSON":  {Type: "MoneyDeposited", Data: []byte(`{"amount": 1`)},
		"binary for JSON": {Type: "MoneyDeposited", ContentType: es.ContentTypeBinary, Data: []byte{1, 2}},
	} {
		t.Run(name, func(t *testing.T) {
			stream := "account-" + strings.ReplaceAll(name, " ", "")
			_, err := store.Append(ctx, stream, es.NoStream, es.EventData{Type: "AccountOpened", Data: []byte(`{"owner":"x"}`)}, ev)
			require.NoError(t, err)
			_, _, err = repo.Load(ctx, strings.TrimPrefix(stream, "account-"))
			var de *es.DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, stream, de.Stream)
			assert.Equal(t, uint64(1), de.Revision)
			assert.Equal(t, ev.Type, de.Type)
			assert.Contains(t, err.Error(), `event 1 of stream "`+stream+`"`)
		})
	}

	t.Run("type of another aggregate", func(t *testing.T) {
		type Other struct{}
		types, err := es.NewRegistry(es.Type[Opened]("AccountOpened"), es.Type[Other]("Other"))
		require.NoError(t, err)
		repo, err := aggregate.New(store, types, accountDef)
		require.NoError(t, err)
		_, err = store.Append(ctx, "account-other", es.NoStream, es.EventData{Type: "Other", Data: []byte(`{}`)})
		require.NoError(t, err)
		_, _, err = repo.Load(ctx, "other")
		var de *es.DecodeError
		require.ErrorAs(t, err, &de)
		assert.ErrorContains(t, err, "which is not aggregate_test.Event")
	})
}

func TestMetadataFromContext(t *testing.T) {
	ctx := es.WithCausationID(es.WithCorrelationID(t.Context(), "corr-1"), "cmd-1")
	store := memstore.MustNew()
	repo := newRepo(t, store)
	_, err := repo.Create(ctx, "1", open("ada"))
	require.NoError(t, err)
	for ev, err := range store.ReadStream(ctx, "account-1", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		md, err := es.ParseMetadata(ev.Metadata)
		require.NoError(t, err)
		assert.Equal(t, es.Metadata{CorrelationID: "corr-1", CausationID: "cmd-1"}, md)
	}
}

// interfering is a store that appends an event of its own to the stream
// just before the first n appends through it: each of them conflicts.
type interfering struct {
	es.Store
	n        atomic.Int32
	attempts atomic.Int32
}

func (s *interfering) Append(ctx context.Context, stream string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	s.attempts.Add(1)
	if s.n.Add(-1) >= 0 {
		if _, err := s.Store.Append(ctx, stream, es.Any, es.EventData{Type: "MoneyDeposited", Data: []byte(`{"amount":1}`)}); err != nil {
			return es.AppendResult{}, err
		}
	}
	return s.Store.Append(ctx, stream, expected, events...)
}

func TestUpdateRetriesConflicts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		store := &interfering{Store: memstore.MustNew()}
		repo := newRepo(t, store, aggregate.WithRetry(3, 10*time.Millisecond))
		_, err := repo.Create(ctx, "1", open("ada"))
		require.NoError(t, err)

		store.n.Store(2)
		store.attempts.Store(0)
		var decided []int
		start := time.Now()
		res, err := repo.Update(ctx, "1", func(a Account) ([]Event, error) {
			decided = append(decided, a.Balance)
			return []Event{Deposited{Amount: 100}}, nil
		})
		require.NoError(t, err)
		assert.Equal(t, []int{0, 1, 2}, decided, "each attempt decides on a fresh state")
		assert.Equal(t, int32(3), store.attempts.Load())
		assert.Equal(t, 3, res.Attempts)
		assert.Equal(t, 102, res.State.Balance)
		assert.Equal(t, uint64(3), res.Version)
		elapsed := time.Since(start)
		assert.Greater(t, elapsed, time.Duration(0), "retries back off")
		assert.LessOrEqual(t, elapsed, 30*time.Millisecond, "backoff is bounded: 10ms then 20ms at most")
	})
}

func TestUpdateGivesUpAfterAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		store := &interfering{Store: memstore.MustNew()}
		repo := newRepo(t, store, aggregate.WithRetry(4, time.Millisecond))
		_, err := repo.Create(ctx, "1", open("ada"))
		require.NoError(t, err)
		store.n.Store(100)
		store.attempts.Store(0)
		_, err = repo.Update(ctx, "1", deposit(1))
		require.ErrorIs(t, err, es.ErrWrongExpectedVersion)
		assert.ErrorContains(t, err, "gave up after 4 attempts")
		assert.Equal(t, int32(4), store.attempts.Load())
	})
}

func TestUpdateBackoffStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		store := &interfering{Store: memstore.MustNew()}
		repo := newRepo(t, store, aggregate.WithRetry(10, time.Hour))
		_, err := repo.Create(ctx, "1", open("ada"))
		require.NoError(t, err)
		store.n.Store(100)
		done := make(chan error)
		go func() {
			_, err := repo.Update(ctx, "1", deposit(1))
			done <- err
		}()
		synctest.Wait() // Update is now sleeping before its retry
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	ctx := t.Context()
	repo := newRepo(t, memstore.MustNew(), aggregate.WithRetry(1000, 0))
	_, err := repo.Create(ctx, "1", open("ada"))
	require.NoError(t, err)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				_, err := repo.Update(ctx, "1", deposit(1))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	state, version, err := repo.Load(ctx, "1")
	require.NoError(t, err)
	assert.Equal(t, writers*each, state.Balance)
	assert.Equal(t, uint64(writers*each), version)
}

// synthetic is a store whose one stream holds n deposits, made up as they
// are read: nothing is kept, so memory measured while loading is the
// repository's own.
type synthetic struct {
	es.Store
	n     uint64
	probe func(rev uint64)
}

func (s *synthetic) ReadStream(ctx context.Context, stream string, opts es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		data := []byte(`{"amount":1}`)
		for rev := opts.From; rev < s.n; rev++ {
			if s.probe != nil {
				s.probe(rev)
			}
			if !yield(es.RecordedEvent{Stream: stream, Revision: rev, Type: "MoneyDeposited", ContentType: es.ContentTypeJSON, Data: data}, nil) {
				return
			}
		}
	}
}

func TestLoadMemoryDoesNotGrowWithStreamLength(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 400,000 events")
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const n = 400_000
	var early, late uint64
	store := &synthetic{n: n, probe: func(rev uint64) {
		switch rev {
		case 10_000:
			early = heap()
		case n - 1:
			late = heap()
		}
	}}
	state, version, err := newRepo(t, store).Load(t.Context(), "1")
	require.NoError(t, err)
	assert.Equal(t, n, state.Balance)
	assert.Equal(t, uint64(n-1), version)
	// Holding the events would take tens of megabytes; allow 1 MiB of noise.
	assert.Less(t, int64(late)-int64(early), int64(1<<20), "heap grew from %d to %d bytes while replaying", early, late)
}

// counting counts the events read through it.
type counting struct {
	es.Store
	read atomic.Int64
}

func (s *counting) ReadStream(ctx context.Context, stream string, opts es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		for ev, err := range s.Store.ReadStream(ctx, stream, opts) {
			if err == nil && !strings.HasPrefix(stream, aggregate.SnapshotStreamPrefix) {
				s.read.Add(1)
			}
			if !yield(ev, err) {
				return
			}
		}
	}
}

func TestSnapshots(t *testing.T) {
	for name, snapshots := range map[string]func(es.Store) aggregate.SnapshotStore{
		"memory": func(es.Store) aggregate.SnapshotStore { return new(aggregate.MemorySnapshots) },
		"stream": func(s es.Store) aggregate.SnapshotStore { return aggregate.NewStreamSnapshots(s) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			store := &counting{Store: memstore.MustNew()}
			snaps := snapshots(store.Store)
			repo := newRepo(t, store, aggregate.WithSnapshots(snaps, 10, "v1"))
			_, err := repo.Create(ctx, "1", open("ada"))
			require.NoError(t, err)
			for range 24 {
				_, err := repo.Update(ctx, "1", deposit(1))
				require.NoError(t, err)
			}
			snap, err := snaps.LoadSnapshot(ctx, "account-1")
			require.NoError(t, err)
			assert.Equal(t, uint64(19), snap.Revision, "a snapshot every 10 events: after the 10th and the 20th")
			assert.Equal(t, "v1", snap.Schema)

			store.read.Store(0)
			state, version, err := repo.Load(ctx, "1")
			require.NoError(t, err)
			assert.Equal(t, Account{Owner: "ada", Balance: 24, Events: 25}, state)
			assert.Equal(t, uint64(24), version)
			assert.Equal(t, int64(5), store.read.Load(), "only the events after the snapshot are read")

			// A new schema ignores the old snapshots and replays everything.
			v2 := newRepo(t, store, aggregate.WithSnapshots(snaps, 10, "v2"))
			store.read.Store(0)
			state2, _, err := v2.Load(ctx, "1")
			require.NoError(t, err)
			assert.Equal(t, state, state2)
			assert.Equal(t, int64(25), store.read.Load())
		})
	}
}

func TestStreamSnapshotsKeepOnlyTheLatest(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	snaps := aggregate.NewStreamSnapshots(store)
	for rev := range uint64(3) {
		require.NoError(t, snaps.SaveSnapshot(ctx, aggregate.Snapshot{Stream: "account-1", Revision: rev, Schema: "v1", Data: []byte(`{}`)}))
	}
	assert.Equal(t, 1, count(t, store.ReadStream(ctx, "snapshot-account-1", es.ReadStreamOptions{})))
	snap, err := snaps.LoadSnapshot(ctx, "account-1")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), snap.Revision)
	_, err = snaps.LoadSnapshot(ctx, "account-2")
	require.ErrorIs(t, err, aggregate.ErrNoSnapshot)
}

func TestCorruptSnapshotIsIgnoredAndLogged(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	snaps := new(aggregate.MemorySnapshots)
	var logs bytes.Buffer
	repo := newRepo(t, store, aggregate.WithSnapshots(snaps, 100, "v1"),
		aggregate.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	_, err := repo.Create(ctx, "1", open("ada"))
	require.NoError(t, err)
	require.NoError(t, snaps.SaveSnapshot(ctx, aggregate.Snapshot{Stream: "account-1", Revision: 0, Schema: "v1", Data: []byte(`{not json`)}))
	state, _, err := repo.Load(ctx, "1")
	require.NoError(t, err)
	assert.Equal(t, "ada", state.Owner)
	assert.Contains(t, logs.String(), "cannot decode snapshot")
}

func count[T any](t *testing.T, seq iter.Seq2[T, error]) int {
	t.Helper()
	n := 0
	for _, err := range seq {
		require.NoError(t, err)
		n++
	}
	return n
}

func TestSnapshotOfADeletedStreamIsNotUsedAfterItIsRecreated(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()
	snaps := new(aggregate.MemorySnapshots)
	repo := newRepo(t, store, aggregate.WithSnapshots(snaps, 5, "v1"))
	_, err := repo.Create(ctx, "1", open("ada"))
	require.NoError(t, err)
	for range 4 {
		_, err := repo.Update(ctx, "1", deposit(10))
		require.NoError(t, err)
	}
	snap, err := snaps.LoadSnapshot(ctx, "account-1")
	require.NoError(t, err, "a snapshot was taken")
	require.Equal(t, uint64(4), snap.Revision, "at the last event: the recreated stream continues right after it")

	_, err = store.DeleteStream(ctx, "account-1", es.Any)
	require.NoError(t, err)
	_, _, err = repo.Load(ctx, "1")
	require.ErrorIs(t, err, aggregate.ErrNotFound, "a deleted aggregate is not found, snapshot or not")

	res, err := repo.Create(ctx, "1", open("bob"))
	require.NoError(t, err)
	state, version, err := repo.Load(ctx, "1")
	require.NoError(t, err)
	assert.Equal(t, Account{Owner: "bob", Events: 1}, state, "the old life's snapshot is ignored")
	assert.Equal(t, res.Version, version)
}
