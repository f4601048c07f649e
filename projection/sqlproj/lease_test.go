package sqlproj_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/internal/faultproxy"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// Two processes on one database (two pools, two Checkpoints): one holds
// the lease, the other waits, names the holder, and takes the lease as
// soon as it is given back.
func TestLeaseExcludes(t *testing.T) {
	onEach(t, testLeaseExcludes[*sql.Tx], testLeaseExcludes[pgx.Tx])
}

func testLeaseExcludes[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	dsn := b.create(t)
	_, openA := b.connect(t, dsn)
	_, openB := b.connect(t, dsn)
	a := openA.must(t, sqlproj.WithLeaseHolder("a"))
	other := openB.must(t, sqlproj.WithLeaseHolder("b"), sqlproj.WithLeasePoll(10*time.Millisecond))

	holder, err := other.LeaseHolder(ctx, "p/v1")
	require.NoError(t, err)
	assert.Empty(t, holder, "nobody holds it yet")
	heldA, release, err := a.Lease(ctx, "p/v1")
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, _, err = other.Lease(short, "p/v1")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the lease is held")
	holder, err = other.LeaseHolder(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, "a", holder)

	_, releaseQ, err := other.Lease(ctx, "q/v1")
	require.NoError(t, err, "another key is free")
	releaseQ()

	type lease struct {
		held    context.Context
		release func()
		err     error
	}
	got := make(chan lease, 1)
	go func() {
		held, release, err := other.Lease(ctx, "p/v1")
		got <- lease{held, release, err}
	}()
	release()
	release() // idempotent
	require.Error(t, heldA.Err(), "a released lease's context ends")
	assert.NotErrorIs(t, context.Cause(heldA), projection.ErrLeaseLost, "given back, not lost")
	var l lease
	select {
	case l = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting process did not take the lease it was given")
	}
	require.NoError(t, l.err)
	defer l.release()
	assert.NoError(t, l.held.Err())
	holder, err = a.LeaseHolder(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, "b", holder)
}

// A holder that cannot reach its database loses its lease after the
// time-to-live, and a standby on another connection takes it over; the
// old holder's commits are fenced, locally and in the database.
func TestSQLiteLeaseExpires(t *testing.T) {
	ctx := t.Context()
	path := t.TempDir() + "/lease.db"
	dbA := openSQLite(t, path)
	a := newCheckpoints(t, dbA, sqlproj.SQLite, sqlproj.WithLeaseTTL(300*time.Millisecond), sqlproj.WithLeaseHolder("a"))
	b := newCheckpoints(t, openSQLite(t, path), sqlproj.SQLite, sqlproj.WithLeaseTTL(300*time.Millisecond),
		sqlproj.WithLeasePoll(10*time.Millisecond), sqlproj.WithLeaseHolder("b"))

	heldA, releaseA, err := a.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer releaseA()
	_, err = a.Load(ctx, "p/v1")
	require.NoError(t, err)
	at := func(n uint64) projection.Checkpoint {
		return projection.Checkpoint{Position: es.Position{Commit: n, Prepare: n}}
	}
	require.NoError(t, a.Commit(ctx, "p/v1", at(1), nil))

	start := time.Now()
	require.NoError(t, dbA.Close()) // a's database is gone: it cannot renew
	heldB, releaseB, err := b.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer releaseB()
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "not before a's lease expired")
	assert.NoError(t, heldB.Err())
	select {
	case <-heldA.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a did not count its lease lost")
	}
	require.ErrorIs(t, context.Cause(heldA), projection.ErrLeaseLost)
	err = a.Commit(ctx, "p/v1", at(2), nil)
	require.ErrorIs(t, err, projection.ErrFenced, "a lost lease commits nothing")
	require.ErrorIs(t, err, projection.ErrLeaseLost)

	cp, err := b.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, at(1), cp)
	require.NoError(t, b.Commit(ctx, "p/v1", at(2), nil), "the new holder is not fenced")
}

// viaProxy returns dsn with its host replaced by p's address.
func viaProxy(t testing.TB, dsn string, p *faultproxy.Proxy) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.Host = p.Addr()
	return u.String()
}

// proxied starts a fault proxy to dsn's server.
func proxied(t testing.TB, dsn string) *faultproxy.Proxy {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	return faultproxy.Start(t, u.Host)
}

// The holder's database goes away while its process lives (connections
// cut, or stalled with nothing answered): within one time-to-live it stops
// committing, the standby takes over, and once the database is back the
// old holder waits in standby. Every event is applied once, and the
// rightful holder is never fenced.
func TestPostgresLeaseHolderCutOff(t *testing.T) {
	for _, fault := range []string{"cut", "stall"} {
		t.Run(fault, func(t *testing.T) {
			onPostgres(t, func(t *testing.T, b backend[*sql.Tx]) { testPostgresLeaseHolderCutOff(t, b, fault) },
				func(t *testing.T, b backend[pgx.Tx]) { testPostgresLeaseHolderCutOff(t, b, fault) })
		})
	}
}

func testPostgresLeaseHolderCutOff[Tx any](t *testing.T, b backend[Tx], fault string) {
	ctx := t.Context()
	dsn := b.create(t)
	proxy := proxied(t, dsn)
	store := memstore.MustNew()
	add(t, store, "counter-a", 1, 2)
	_, open1 := b.connect(t, viaProxy(t, dsn+"&connect_timeout=2", proxy))
	db2, open2 := b.connect(t, dsn)
	const ttl = 600 * time.Millisecond
	cps1 := open1.must(t, sqlproj.WithLeasePoll(10*time.Millisecond), sqlproj.WithLeaseTTL(ttl), sqlproj.WithLeaseHolder("one"))
	cps2 := open2.must(t, sqlproj.WithLeasePoll(10*time.Millisecond), sqlproj.WithLeaseTTL(ttl), sqlproj.WithLeaseHolder("two"))
	m := newTotals(b, "totals")
	// The first replica restarts after its failure (and waits for the
	// lease in standby); the second one returns any failure, ErrFenced
	// included.
	r1 := newRunner(t, store, cps1, m.projection("totals"), projection.WithRestart(10*time.Millisecond, 50*time.Millisecond),
		projection.WithRetry(2, 10*time.Millisecond))
	r2 := newRunner(t, store, cps2, m.projection("totals"))
	stop1 := start(t, r1)
	waitState(t, r1, projection.StateLive)
	stop2 := start(t, r2)
	// The standby names the holder it waits for, once it has looked it up.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st2, err := r2.Status(ctx)
		require.NoError(t, err)
		if st2.State == projection.StateStandby && st2.Holder == "one" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the standby names the holder it waits for: %+v", st2)
		time.Sleep(5 * time.Millisecond)
	}

	if fault == "cut" {
		proxy.Cut()
	} else {
		proxy.Stall()
	}
	res := add(t, store, "counter-a", 10) // r1 cannot commit it
	waitState(t, r2, projection.StateLive)
	require.NoError(t, r2.WaitFor(ctx, res.Position), "the new holder applies it")
	st1, err := r1.Status(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, projection.StateLive, st1.State, "the old holder stopped: %v", st1.Err)

	proxy.Restore()
	waitState(t, r1, projection.StateStandby)
	for i := range 5 {
		res := add(t, store, "counter-a", 11+i)
		require.NoError(t, r2.WaitFor(ctx, res.Position), "the new holder applies every event")
	}
	st2, err := r2.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, projection.StateLive, st2.State, "the new holder is not fenced: %v", st2.Err)
	assert.Equal(t, map[string]total{"counter-a": {1 + 2 + 10 + 11 + 12 + 13 + 14 + 15, 8, 7}}, read(t, db2, "totals"),
		"every event applied once")
	require.NoError(t, stop2(), "the new holder was never fenced")
	require.NoError(t, stop1())
}

// PostgreSQL terminates the holder's connections (pg_terminate_backend)
// again and again while its process lives: the holder renews its lease on
// new connections and goes on, the standby stays in standby, and every
// event is applied once.
func TestPostgresLeaseSurvivesTerminatedConnections(t *testing.T) {
	onPostgres(t, testPostgresLeaseSurvivesTerminatedConnections[*sql.Tx], testPostgresLeaseSurvivesTerminatedConnections[pgx.Tx])
}

func testPostgresLeaseSurvivesTerminatedConnections[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	dsn := b.create(t)
	store := memstore.MustNew()
	app := fmt.Sprintf("sqlproj_term_%d", time.Now().UnixNano())
	_, open1 := b.connect(t, dsn+"&application_name="+app)
	db2, open2 := b.connect(t, dsn)
	const ttl = time.Second
	cps1 := open1.must(t, sqlproj.WithLeaseTTL(ttl), sqlproj.WithLeaseHolder("one"))
	cps2 := open2.must(t, sqlproj.WithLeasePoll(10*time.Millisecond), sqlproj.WithLeaseTTL(ttl), sqlproj.WithLeaseHolder("two"))
	m := newTotals(b, "totals")
	r1 := newRunner(t, store, cps1, m.projection("totals"), projection.WithRestart(10*time.Millisecond, 50*time.Millisecond),
		projection.WithRetry(5, 10*time.Millisecond))
	r2 := newRunner(t, store, cps2, m.projection("totals"))
	stop1 := start(t, r1)
	waitState(t, r1, projection.StateLive)
	stop2 := start(t, r2)
	waitState(t, r2, projection.StateStandby)

	sum := 0
	for i := range 4 {
		var n int
		require.NoError(t, db2.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1`, app).Scan(&n))
		for j := range 5 {
			sum += 10*i + j + 1
			res := add(t, store, "counter-a", 10*i+j+1)
			require.NoError(t, r1.WaitFor(ctx, res.Position), "the holder goes on")
		}
	}
	// Past a time-to-live since the last termination, the standby has
	// still not run.
	deadline := time.Now().Add(ttl + ttl/2)
	for time.Now().Before(deadline) {
		st2, err := r2.Status(ctx)
		require.NoError(t, err)
		require.Equal(t, projection.StateStandby, st2.State, "only one runner at a time: %v", st2.Err)
		require.Zero(t, st2.Events)
		time.Sleep(50 * time.Millisecond) // sampling the standby's state, not waiting for it
	}
	assert.Equal(t, map[string]total{"counter-a": {int64(sum), 20, 19}}, read(t, db2, "totals"), "every event applied once")
	require.NoError(t, stop1())
	require.NoError(t, stop2())
}

// Checkpoints and PgxCheckpoints with the same table prefix share their
// rows and their leases: either can take over from the other.
func TestPgxSharesCheckpoints(t *testing.T) {
	ctx := t.Context()
	dsn := postgresSchema(t)
	_, openSQL := postgresBackend.connect(t, dsn)
	_, openPgx := pgxBackend.connect(t, dsn)
	viaSQL := openSQL.must(t)
	viaPgx := openPgx.must(t, sqlproj.WithLeasePoll(10*time.Millisecond))

	_, release, err := viaSQL.Lease(ctx, "p/v1")
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, _, err = viaPgx.Lease(short, "p/v1")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the lease is held through database/sql")

	cp := projection.Checkpoint{Position: es.Position{Commit: 7, Prepare: 7}, Rebuilding: true}
	_, err = viaSQL.Load(ctx, "p/v1")
	require.NoError(t, err)
	require.NoError(t, viaSQL.Commit(ctx, "p/v1", cp, nil))
	require.NoError(t, viaSQL.SetActiveVersion(ctx, "p", 3, nil))
	release()

	_, release, err = viaPgx.Lease(ctx, "p/v1")
	require.NoError(t, err)
	defer release()
	got, err := viaPgx.Load(ctx, "p/v1")
	require.NoError(t, err)
	assert.Equal(t, cp, got)
	v, err := viaPgx.ActiveVersion(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, 3, v)
	next := projection.Checkpoint{Position: es.Position{Commit: 9, Prepare: 9}}
	require.NoError(t, viaPgx.Commit(ctx, "p/v1", next, nil))
	require.ErrorIs(t, viaSQL.Commit(ctx, "p/v1", projection.Checkpoint{Position: es.Position{Commit: 8, Prepare: 8}}, nil),
		sqlproj.ErrConflict, "fenced across the two clients")
}

// On SQLite, a lease whose holder was a process of this host that is gone
// (killed before it could give the lease back) is taken over at once, not
// after its time-to-live; a live holder's is not.
func TestSQLiteLeaseOfADeadProcess(t *testing.T) {
	ctx := t.Context()
	db := openSQLite(t, t.TempDir()+"/lease.db")
	cps := newCheckpoints(t, db, sqlproj.SQLite, sqlproj.WithLeasePoll(10*time.Millisecond))
	host, err := os.Hostname()
	require.NoError(t, err)
	dead := exec.Command(os.Args[0], "-test.run=^$")
	require.NoError(t, dead.Run())
	hold := func(key string, pid int, instance string) {
		_, err := db.ExecContext(ctx, `INSERT INTO eventfold_leases (key, holder, host, pid, instance, token, expires)
			VALUES ($1, 'earlier', $2, $3, $4, 7, $5)`, key, host, pid, instance, time.Now().Add(time.Hour).UnixMilli())
		require.NoError(t, err)
	}
	hold("dead/v1", dead.Process.Pid, "x")
	hold("restarted/v1", os.Getpid(), "an instance this process never had")
	hold("alive/v1", os.Getppid(), "x")

	for _, key := range []string{"dead/v1", "restarted/v1"} {
		short, cancel := context.WithTimeout(ctx, 5*time.Second)
		held, release, err := cps.Lease(short, key)
		require.NoError(t, err, key)
		assert.NoError(t, held.Err())
		release()
		cancel()
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, _, err = cps.Lease(short, "alive/v1")
	require.ErrorIs(t, err, context.DeadlineExceeded, "a live process's lease stays its own")
}

// A database that stalls fails the calls that are not batches within the
// call timeout, instead of hanging them; once it answers again, the same
// Checkpoints works.
func TestPostgresCallsEndWhenTheDatabaseStalls(t *testing.T) {
	onPostgres(t, testPostgresCallsEndWhenTheDatabaseStalls[*sql.Tx], testPostgresCallsEndWhenTheDatabaseStalls[pgx.Tx])
}

func testPostgresCallsEndWhenTheDatabaseStalls[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	dsn := b.create(t)
	proxy := proxied(t, dsn)
	_, open := b.connect(t, viaProxy(t, dsn+"&connect_timeout=2", proxy))
	cps := open.must(t, sqlproj.WithCallTimeout(300*time.Millisecond))
	_, err := cps.Load(ctx, "p/v1")
	require.NoError(t, err)

	proxy.Stall()
	for name, call := range map[string]func() error{
		"Load":          func() error { _, err := cps.Load(ctx, "p/v1"); return err },
		"ActiveVersion": func() error { _, err := cps.ActiveVersion(ctx, "p"); return err },
		"LeaseHolder":   func() error { _, err := cps.LeaseHolder(ctx, "p/v1"); return err },
		"DeadLetters":   func() error { _, err := cps.DeadLetters(ctx, "p"); return err },
		"SetActiveVersion": func() error {
			return cps.SetActiveVersion(ctx, "p", 2, nil)
		},
	} {
		start := time.Now()
		err := call()
		assert.Error(t, err, name)
		assert.Less(t, time.Since(start), 5*time.Second, "%s ends within its call timeout (and a dial's)", name)
	}
	proxy.Restore()
	require.Eventually(t, func() bool {
		_, err := cps.Load(ctx, "p/v1")
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the same Checkpoints works once the database answers")
}
