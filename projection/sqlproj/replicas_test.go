package sqlproj_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// replicaEnv, in a child process of TestReplicasShareAndTakeOver, holds the
// PostgreSQL connection string the replica runs on.
const replicaEnv = "EVENTFOLD_SQLPROJ_REPLICA"

// replicaTTL is the replicas' lease time-to-live: a killed replica's
// partitions are taken over within about this long.
const replicaTTL = time.Second

// partitionedTotals is the read model of the replicas: the totals,
// partitioned by stream, whose handler also records in table disorder
// every event that does not follow its stream's last one applied.
func partitionedTotals() projection.Projection[*sql.Tx] {
	m := newTotals(postgresBackend, "totals")
	p := m.projection("totals")
	p.Partitions = 4
	setup := p.Setup
	p.Setup = func(ctx context.Context, tx *sql.Tx, version int) error {
		if err := setup(ctx, tx, version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS disorder (stream TEXT, revision BIGINT, last BIGINT)`)
		return err
	}
	handle := p.Handle
	p.Handle = func(ctx context.Context, tx *sql.Tx, b projection.Batch) error {
		last := map[string]int64{}
		for _, ev := range b.Events {
			prev, seen := last[ev.Stream]
			if !seen {
				prev = -1
				err := tx.QueryRowContext(ctx, `SELECT last_revision FROM `+b.Table("totals")+` WHERE stream = $1`, ev.Stream).Scan(&prev)
				if err != nil && err != sql.ErrNoRows {
					return err
				}
			}
			if int64(ev.Revision) != prev+1 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO disorder VALUES ($1, $2, $3)`, ev.Stream, int64(ev.Revision), prev); err != nil {
					return err
				}
			}
			last[ev.Stream] = int64(ev.Revision)
		}
		return handle(ctx, tx, b)
	}
	return p
}

// runReplica is a child process: one replica of the partitioned totals on
// the database dsn, until its standard input closes. It prints "running"
// once it runs.
func runReplica(t *testing.T, dsn string) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	db := openPostgres(t, dsn)
	store, err := postgres.Open(ctx, dsn)
	require.NoError(t, err)
	defer store.Close()
	cps := newCheckpoints(t, db, sqlproj.Postgres, sqlproj.WithLeaseTTL(replicaTTL), sqlproj.WithLeasePoll(20*time.Millisecond))
	g, err := projection.NewPartitioned(store, cps, types(t), partitionedTotals(),
		projection.WithLogger(quiet), projection.WithRebalance(50*time.Millisecond), projection.WithBatch(50, 5*time.Millisecond),
		projection.WithRestart(10*time.Millisecond, 100*time.Millisecond))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	fmt.Println("running")
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	require.NoError(t, <-done)
}

// replica is a child process running runReplica.
type replica struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pid   int
}

func startReplica(t *testing.T, dsn string) *replica {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestReplicasShareAndTakeOver$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), replicaEnv+"="+dsn)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	r := &replica{cmd: cmd, stdin: stdin, pid: cmd.Process.Pid}
	t.Cleanup(func() { r.stop(t) })
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "running" {
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return r
}

// stop closes the replica's input, which stops it, and waits for it.
func (r *replica) stop(t *testing.T) {
	if r.cmd.ProcessState != nil {
		return
	}
	r.stdin.Close()
	err := r.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok && ee.Sys().(syscall.WaitStatus).Signaled() {
		return // killed by the test
	}
	assert.NoError(t, err)
}

// holders returns, by partition, the process ID of the replica that holds
// each partition's lease (0: none).
func holders(t *testing.T, g *projection.Partitioned[*sql.Tx]) []int {
	t.Helper()
	st, err := g.Status(t.Context())
	require.NoError(t, err)
	out := make([]int, len(st.Parts))
	for i, p := range st.Parts {
		if p.State != projection.StateElsewhere {
			continue
		}
		// The default holder is "<host>:<pid>".
		pid, err := strconv.Atoi(p.Holder[strings.LastIndex(p.Holder, ":")+1:])
		require.NoError(t, err, p.Holder)
		out[i] = pid
	}
	return out
}

// pollUntil polls cond every few milliseconds until it holds, failing the
// test after within.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// Three replicas, each a process, share the partitions of a projection on
// PostgreSQL while events are appended: two start and split the
// partitions, a third joins and takes its share, one is killed (SIGKILL)
// and the others take its partitions over within twice the lease's
// time-to-live. At the end the read model equals a fresh single runner's
// replay (nothing lost, nothing applied twice), and no stream's events
// were applied out of order.
func TestReplicasShareAndTakeOver(t *testing.T) {
	if dsn := os.Getenv(replicaEnv); dsn != "" {
		runReplica(t, dsn)
		return
	}
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	dsn := postgresSchema(t)
	ctx := t.Context()
	db := openPostgres(t, dsn)
	store, err := postgres.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	for i := range 300 {
		add(t, store, fmt.Sprintf("counter-%d", i%40), i%7)
	}
	watch, err := projection.NewPartitioned(store, newCheckpoints(t, db, sqlproj.Postgres), types(t), partitionedTotals())
	require.NoError(t, err)

	appending, stopAppending := context.WithCancel(ctx)
	var appends sync.WaitGroup
	appends.Go(func() {
		for i := 0; appending.Err() == nil; i++ {
			_, err := store.Append(ctx, fmt.Sprintf("counter-%d", i%40), es.Any, es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, i%5)})
			if appending.Err() == nil {
				assert.NoError(t, err)
			}
			time.Sleep(time.Millisecond) // a steady trickle, not a flood
		}
	})
	distinct := func(pids []int) map[int]int {
		out := map[int]int{}
		for _, p := range pids {
			if p != 0 {
				out[p]++
			}
		}
		return out
	}

	a, b := startReplica(t, dsn), startReplica(t, dsn)
	pollUntil(t, 20*time.Second, "two replicas hold two partitions each", func() bool {
		d := distinct(holders(t, watch))
		return d[a.pid] == 2 && d[b.pid] == 2
	})
	c := startReplica(t, dsn)
	pollUntil(t, 20*time.Second, "the third replica takes its share", func() bool {
		d := distinct(holders(t, watch))
		return len(d) == 3 && d[a.pid]+d[b.pid]+d[c.pid] == 4
	})

	victim := a
	if distinct(holders(t, watch))[b.pid] == 2 {
		victim = b // kill the one with two partitions
	}
	require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))
	_ = victim.cmd.Wait()
	took := pollUntil(t, 20*time.Second, "the survivors take the killed replica's partitions", func() bool {
		pids := holders(t, watch)
		d := distinct(pids)
		return d[victim.pid] == 0 && len(d) == 2 && !slices.Contains(pids, 0)
	})
	t.Logf("partitions taken over %v after the kill (lease time-to-live %v)", took.Round(time.Millisecond), replicaTTL)
	assert.Less(t, took, 2*replicaTTL+time.Second, "takeover within twice the time-to-live (and a second for a loaded machine)")

	stopAppending()
	appends.Wait()
	res := add(t, store, "other-1", 1) // no partition consumes it: WaitFor waits for all
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, watch.WaitFor(wctx, res.Position))

	want := replay(t, store, db, sqlproj.Postgres)
	require.Len(t, want, 40)
	assert.Equal(t, want, read(t, db, "totals_v1"), "the read model equals a fresh replay")
	var disorder int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM disorder`).Scan(&disorder))
	assert.Zero(t, disorder, "events applied out of their stream's order")
}

// A parallel rebuild of a partitioned projection on PostgreSQL,
// interrupted at random points (its context ended) and run again until it
// finishes, ends with the read model of a fresh single runner's replay,
// and every stream applied in order.
func TestParallelRebuildInterruptedOnPostgreSQL(t *testing.T) {
	dsn := postgresSchema(t)
	ctx := t.Context()
	db := openPostgres(t, dsn)
	store := memstore.MustNew()
	for i := range 3000 {
		add(t, store, fmt.Sprintf("counter-%d", i%60), i%9)
	}
	cps := newCheckpoints(t, db, sqlproj.Postgres)
	g, err := projection.NewPartitioned(store, cps, types(t), partitionedTotals(),
		projection.WithLogger(quiet), projection.WithBatch(40, time.Millisecond), projection.WithWorkers(2))
	require.NoError(t, err)
	require.NoError(t, g.CatchUp(ctx))

	rng := rand.New(rand.NewPCG(13, 13))
	interrupted := 0
	for attempt := 0; ; attempt++ {
		// 30 interrupted tries at most, then one to the end: on a loaded
		// machine none of the first may get far.
		limit := time.Duration(rng.IntN(60_000)) * time.Microsecond
		if attempt >= 30 {
			limit = time.Minute
		}
		rctx, cancel := context.WithTimeout(ctx, limit)
		err := g.Rebuild(rctx, nil)
		cancel()
		if err == nil {
			break
		}
		require.ErrorIs(t, err, context.DeadlineExceeded)
		interrupted++
	}
	t.Logf("interrupted %d times", interrupted)
	assert.Positive(t, interrupted)
	want := replay(t, store, db, sqlproj.Postgres)
	require.Len(t, want, 60)
	assert.Equal(t, want, read(t, db, "totals_v1"), "the read model equals a fresh replay")
	var disorder int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM disorder`).Scan(&disorder))
	assert.Zero(t, disorder, "events applied out of their stream's order")
}
