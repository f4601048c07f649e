package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/internal/sqltest"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

// seedSQLite creates a store in a new file with one stream of n events,
// closes it and returns the file's path.
func seedSQLite(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	evs := make([]es.EventData, n)
	for i := range evs {
		evs[i] = es.EventData{Type: "Seeded", Data: []byte(`{}`)}
	}
	_, err = s.Append(t.Context(), "seed", es.NoStream, evs...)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	return path
}

// readCount returns the number of events in the stream "seed".
func readCount(t *testing.T, s es.Store) int {
	t.Helper()
	n := 0
	for _, err := range s.ReadStream(t.Context(), "seed", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		n++
	}
	return n
}

func TestSQLiteReadOnly(t *testing.T) {
	// Tests run as root, where file permissions do not stop writes: the
	// database is opened read-only by SQLite itself.
	for _, c := range []struct{ name, query string }{
		{"ModeRO", "?mode=ro"},
		{"QueryOnly", "?_pragma=query_only(1)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := seedSQLite(t, 3)
			s, err := sqlite.Open(t.Context(), "file:"+path+c.query)
			require.NoError(t, err, "a read-only database with the current schema opens")
			defer func() { require.NoError(t, s.Close()) }()
			assert.Equal(t, 3, readCount(t, s), "reads work")

			_, err = s.Append(t.Context(), "seed", es.Any, es.EventData{Type: "Refused"})
			require.Error(t, err, "an append to a read-only database")
			t.Log(err)
			assert.ErrorContains(t, err, `sqlstore: append to stream "seed"`)
			assert.ErrorContains(t, err, "readonly", "the driver's error is kept")
			_, err = s.DeleteStream(t.Context(), "seed", es.Any)
			require.Error(t, err, "a delete of a read-only database")
			assert.Equal(t, 3, readCount(t, s), "nothing was written")
		})
	}
}

func TestSQLiteNewerSchema(t *testing.T) {
	path := seedSQLite(t, 1)
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE "eventfold_schema" SET version = 99`)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	before := fileBytes(t, path)

	s, err := sqlite.Open(t.Context(), path)
	require.ErrorIs(t, err, sqlstore.ErrSchemaVersion)
	t.Log(err)
	assert.Nil(t, s)
	assert.ErrorContains(t, err, "99")
	assert.True(t, bytes.Equal(before, fileBytes(t, path)), "a database with a newer schema is not written to")
}

func TestSQLiteBusy(t *testing.T) {
	path := seedSQLite(t, 1)
	// Another process holds the write lock.
	other, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	require.NoError(t, err)
	defer other.Close()
	tx, err := other.BeginTx(t.Context(), nil)
	require.NoError(t, err)

	s, err := sqlite.Open(t.Context(), "file:"+path+"?_pragma=busy_timeout(50)")
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	_, err = s.Append(t.Context(), "seed", es.Any, es.EventData{Type: "Blocked"})
	require.Error(t, err, "an append while another connection holds the write lock past the busy timeout")
	t.Log(err)
	assert.ErrorContains(t, err, `sqlstore: append to stream "seed"`)
	assert.ErrorContains(t, err, "SQLITE_BUSY")

	require.NoError(t, tx.Rollback())
	_, err = s.Append(t.Context(), "seed", es.Any, es.EventData{Type: "Unblocked"})
	require.NoError(t, err, "an append once the lock is released")
	assert.Equal(t, 2, readCount(t, s))
}

// TestSQLiteBusyPastTheCallTimeout holds the file's write lock in another
// connection for longer than the store's call timeout, with a busy timeout
// longer still: the append fails with es.ErrUnavailable within about the
// call timeout (the database did not answer in time; SQLITE_BUSY, which it
// would answer after the busy timeout, is not unavailability), nothing is
// written, and the store appends once the lock is released.
func TestSQLiteBusyPastTheCallTimeout(t *testing.T) {
	path := seedSQLite(t, 1)
	other, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	require.NoError(t, err)
	defer other.Close()
	tx, err := other.BeginTx(t.Context(), nil)
	require.NoError(t, err)

	const timeout = 300 * time.Millisecond
	s, err := sqlite.Open(t.Context(), "file:"+path+"?_pragma=busy_timeout(10000)", sqlstore.WithCallTimeout(timeout))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	start := time.Now()
	_, err = s.Append(t.Context(), "seed", es.Any, es.EventData{Type: "Blocked"})
	took := time.Since(start)
	t.Logf("%v after %v", err, took.Round(time.Millisecond))
	require.ErrorIs(t, err, es.ErrUnavailable)
	assert.Less(t, took, timeout+time.Second, "within about the call timeout, not the busy timeout")

	require.NoError(t, tx.Rollback())
	_, err = s.Append(t.Context(), "seed", es.Any, es.EventData{Type: "Unblocked"})
	require.NoError(t, err, "an append once the lock is released")
	assert.Equal(t, 2, readCount(t, s), "the append that timed out was not written")
}

func TestSQLiteFull(t *testing.T) {
	path := seedSQLite(t, 1)
	// A database that may not grow stands for a full disk: SQLite reports
	// both as SQLITE_FULL and rolls the transaction back.
	s, err := sqlite.Open(t.Context(), "file:"+path+"?_pragma=max_page_count(16)")
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	big := make([]es.EventData, 10)
	for i := range big {
		big[i] = es.EventData{Type: "Big", ContentType: es.ContentTypeBinary, Data: bytes.Repeat([]byte{'x'}, 10_000)}
	}
	_, err = s.Append(t.Context(), "seed", es.Exact(0), big...)
	require.Error(t, err, "an append that does not fit")
	t.Log(err)
	assert.ErrorContains(t, err, `sqlstore: append to stream "seed"`)
	assert.ErrorContains(t, err, "full")
	assert.Equal(t, 1, readCount(t, s), "no event of the failed append was written")

	res, err := s.Append(t.Context(), "seed", es.Exact(0), es.EventData{Type: "Small"})
	require.NoError(t, err, "a small append still fits")
	assert.Equal(t, uint64(1), res.Revision, "the failed append left no revision behind")
}

func TestSQLiteOpenErrors(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:"} {
		_, err := sqlite.Open(t.Context(), path)
		assert.ErrorIsf(t, err, es.ErrInvalidArgument, "OpenSQLite(%q)", path)
	}
	_, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "missing-dir", "events.db"))
	assert.Error(t, err, "a file in a directory that does not exist")
	_, err = sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "events.db"), sqlstore.WithSchema("s"))
	assert.ErrorIs(t, err, sqlstore.ErrInvalidOption, "WithSchema on SQLite")
}

func TestSQLiteMemDB(t *testing.T) {
	s, err := sqlite.Open(t.Context(), "file:/"+t.Name()+"?vfs=memdb")
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	_, err = s.Append(t.Context(), "seed", es.NoStream, es.EventData{Type: "InMemory"})
	require.NoError(t, err)
	assert.Equal(t, 1, readCount(t, s), "the reader connections see the writer's database")
}

// TestSQLiteTwoProcesses checks that a subscription sees the appends of
// another Store on the same file, as another process would append, by
// polling.
func TestSQLiteTwoProcesses(t *testing.T) {
	path := seedSQLite(t, 1)
	a := sqltest.OpenSQLite(t, path)
	b := sqltest.OpenSQLite(t, path)
	sub := sqltest.Subscribe(t, a.SubscribeStream, "seed", es.SubscribeStreamOptions{From: es.AfterRevision(0)})
	_, err := b.Append(t.Context(), "seed", es.Exact(0), es.EventData{Type: "FromB"})
	require.NoError(t, err)
	ev := sub.Next(t)
	assert.Equal(t, "FromB", ev.Type)
	assert.Equal(t, uint64(1), ev.Revision)
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		all = append(all, b...)
	}
	return all
}

// TestManySubscriptions runs more subscriptions than the store has read
// connections: they hold none while they wait or deliver.
func TestManySubscriptions(t *testing.T) {
	s := sqltest.OpenSQLite(t, filepath.Join(t.TempDir(), "events.db"))
	const n = 40
	subs := make([]*sqltest.Sub, n)
	for i := range subs {
		subs[i] = sqltest.Subscribe(t, s.SubscribeStream, fmt.Sprintf("many-%d", i), es.SubscribeStreamOptions{})
	}
	for i := range subs {
		_, err := s.Append(t.Context(), fmt.Sprintf("many-%d", i), es.NoStream, es.EventData{Type: "Many"})
		require.NoError(t, err)
	}
	for i, sub := range subs {
		ev := sub.Next(t)
		assert.Equal(t, fmt.Sprintf("many-%d", i), ev.Stream)
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
