package sqlproj_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// Checkpoint.Partitions is stored and read back, and a Commit fenced on
// what it last saw compares it too.
func TestPartitionsRoundTrip(t *testing.T) {
	onEach(t, testPartitionsRoundTrip[*sql.Tx], testPartitionsRoundTrip[pgx.Tx])
}

func testPartitionsRoundTrip[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	_, open := b.open(t)
	cps := open.must(t)
	cp := projection.Checkpoint{Position: es.Position{Commit: 9, Prepare: 9}, Partitions: 4}
	require.NoError(t, cps.Commit(ctx, "p/v1/p2", cp, nil))
	got, err := open.must(t).Load(ctx, "p/v1/p2")
	require.NoError(t, err)
	assert.Equal(t, cp, got)

	cp.Position, cp.Partitions = es.Position{Commit: 12, Prepare: 12}, 8
	require.NoError(t, cps.Commit(ctx, "p/v1/p2", cp, nil))
	got, err = cps.Load(ctx, "p/v1/p2")
	require.NoError(t, err)
	assert.Equal(t, cp, got)

	require.Error(t, cps.Commit(ctx, "p/v1/p2", projection.Checkpoint{Partitions: -1}, nil))
}

// Tables of version 2 (before Checkpoint.Partitions) are upgraded in
// place: their checkpoints stay, with no partitions, and the new column
// is written and read.
func TestUpgradeFromVersion2(t *testing.T) {
	onEach(t, testUpgradeFromVersion2[*sql.Tx], testUpgradeFromVersion2[pgx.Tx])
}

func testUpgradeFromVersion2[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, open := b.open(t)
	bigint, boolean, ts, now, no := "BIGINT", "BOOLEAN", "TIMESTAMPTZ", "now()", "false"
	if b.dialect == sqlproj.SQLite {
		bigint, boolean, ts, now, no = "INTEGER", "INTEGER", "TEXT", "'2026-01-01T00:00:00Z'", "0"
	}
	for _, stmt := range []string{
		`CREATE TABLE eventfold_projection_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)`,
		`INSERT INTO eventfold_projection_schema (id, version) VALUES (1, 2)`,
		`CREATE TABLE eventfold_checkpoints (
			key         TEXT PRIMARY KEY,
			commit_pos  ` + bigint + ` NOT NULL,
			prepare_pos ` + bigint + ` NOT NULL,
			rebuilding  ` + boolean + ` NOT NULL,
			updated_at  ` + ts + ` NOT NULL
		)`,
		`INSERT INTO eventfold_checkpoints (key, commit_pos, prepare_pos, rebuilding, updated_at)
			VALUES ('old/v1', 5, 5, ` + no + `, ` + now + `)`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}

	cps := open.must(t)
	cp, err := cps.Load(ctx, "old/v1")
	require.NoError(t, err)
	assert.Equal(t, projection.Checkpoint{Position: es.Position{Commit: 5, Prepare: 5}}, cp)
	cp.Partitions = 3
	require.NoError(t, cps.Commit(ctx, "old/v1", cp, nil))

	again := open.must(t) // the tables are at the current version now
	got, err := again.Load(ctx, "old/v1")
	require.NoError(t, err)
	assert.Equal(t, cp, got)
	var version int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT version FROM eventfold_projection_schema").Scan(&version))
	assert.Equal(t, 3, version)
}

// Members join, see each other and leave; a member whose name is held
// waits for it.
func TestMembership(t *testing.T) { onEach(t, testMembership[*sql.Tx], testMembership[pgx.Tx]) }

// membershipStore is what the membership tests need of checkpoints.
type membershipStore interface {
	projection.Membership
	projection.LeaseHolders
}

func testMembership[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	_, open := b.open(t)
	ttl := sqlproj.WithLeaseTTL(300 * time.Millisecond)
	a := open.must(t, ttl, sqlproj.WithLeaseHolder("a")).(membershipStore)
	c := open.must(t, ttl, sqlproj.WithLeaseHolder("c"), sqlproj.WithLeasePoll(10*time.Millisecond)).(membershipStore)

	members := func(m membershipStore, group string) []string {
		t.Helper()
		got, err := m.Members(ctx, group)
		require.NoError(t, err)
		return got
	}
	assert.Empty(t, members(a, "svc"))
	leaveA, err := a.Join(ctx, "svc", "a")
	require.NoError(t, err)
	defer leaveA()
	leaveC, err := c.Join(ctx, "svc", "c")
	require.NoError(t, err)
	leaveOther, err := c.Join(ctx, "svc_other", "x")
	require.NoError(t, err)
	defer leaveOther()
	assert.Equal(t, []string{"a", "c"}, members(a, "svc"))
	assert.Equal(t, []string{"a", "c"}, members(c, "svc"))
	assert.Equal(t, []string{"x"}, members(a, "svc_other"), "groups are apart")

	// Renewed past several time-to-lives.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		require.Equal(t, []string{"a", "c"}, members(a, "svc"))
		time.Sleep(50 * time.Millisecond) // sampling over time, not waiting for an event
	}

	leaveC()
	leaveC() // idempotent
	assert.Equal(t, []string{"a"}, members(a, "svc"), "gone at once")

	// The name of a member that is still there is waited for.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = c.Join(short, "svc", "a")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	_, err = a.Join(ctx, "", "a")
	require.Error(t, err)
	_, err = a.Members(ctx, "")
	require.Error(t, err)

	// Ending Join's context leaves too.
	joinCtx, end := context.WithCancel(ctx)
	_, err = c.Join(joinCtx, "svc", "d")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "d"}, members(a, "svc"))
	end()
	require.Eventually(t, func() bool { return slices.Equal(members(a, "svc"), []string{"a"}) },
		5*time.Second, 10*time.Millisecond)
}

// memberChildEnv tells the test binary, re-executed by
// TestKilledMemberDropsOut, to join as a member of the database it names
// ("sqlite:<path>" or "postgres:<dsn>") and wait for its stdin to close.
const memberChildEnv = "SQLPROJ_TEST_MEMBER_CHILD"

// A member whose process is killed (SIGKILL) drops out of Members: on
// SQLite at once, on PostgreSQL within the time-to-live.
func TestKilledMemberDropsOut(t *testing.T) {
	if spec := os.Getenv(memberChildEnv); spec != "" {
		memberChild(t, spec)
		return
	}
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	for _, b := range []backend[*sql.Tx]{sqliteBackend, postgresBackend} {
		t.Run(b.name, func(t *testing.T) { testKilledMemberDropsOut(t, b) })
	}
}

func testKilledMemberDropsOut(t *testing.T, b backend[*sql.Tx]) {
	ctx := t.Context()
	addr := b.create(t)
	_, open := b.connect(t, addr)
	const ttl = 500 * time.Millisecond
	cps := open.must(t, sqlproj.WithLeaseTTL(ttl)).(membershipStore)
	leave, err := cps.Join(ctx, "svc", "parent")
	require.NoError(t, err)
	defer leave()

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKilledMemberDropsOut$", "-test.count=1")
	cmd.Env = append(os.Environ(), memberChildEnv+"="+b.dialect.String()+":"+addr)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	joined := false
	for !joined && sc.Scan() {
		joined = sc.Text() == "joined"
	}
	require.True(t, joined, "child: %s", stderr.String())
	members, err := cps.Members(ctx, "svc")
	require.NoError(t, err)
	require.Equal(t, []string{"child", "parent"}, members, "child: %s", stderr.String())

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	killed := time.Now()
	if b.dialect == sqlproj.SQLite {
		members, err := cps.Members(ctx, "svc")
		require.NoError(t, err)
		assert.Equal(t, []string{"parent"}, members, "a process gone from this host is no member")
		return
	}
	require.Eventually(t, func() bool {
		members, err := cps.Members(ctx, "svc")
		return err == nil && slices.Equal(members, []string{"parent"})
	}, 2*ttl+time.Second, 10*time.Millisecond)
	t.Logf("the killed member dropped out after %v", time.Since(killed))
}

// memberChild is the member's process of TestKilledMemberDropsOut.
func memberChild(t *testing.T, spec string) {
	dialect, addr, _ := strings.Cut(spec, ":")
	var db *sql.DB
	d := sqlproj.SQLite
	if dialect == sqlproj.Postgres.String() {
		db, d = openPostgres(t, addr), sqlproj.Postgres
	} else {
		db = openSQLite(t, addr)
	}
	cps := newCheckpoints(t, db, d, sqlproj.WithLeaseTTL(500*time.Millisecond))
	leave, err := cps.Join(t.Context(), "svc", "child")
	require.NoError(t, err)
	defer leave()
	fmt.Println("joined")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it, or dies
}
