package sqlproj_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// A runner stopped at random points, while rebuilding and while live, and
// started again each time, ends with the read model of a fresh replay:
// nothing lost, nothing applied twice.
func TestRandomStops(t *testing.T) { onEach(t, testRandomStops[*sql.Tx], testRandomStops[pgx.Tx]) }

func testRandomStops[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, checkpoints := b.open(t)
	cps := checkpoints.must(t)
	store := memstore.MustNew()
	rng := rand.New(rand.NewPCG(2026, 11))
	// appends returns n appends of a few events each, drawn from rng
	// (which is not safe for concurrent use) in the test's goroutine.
	appends := func(n int) [][]es.EventData {
		out := make([][]es.EventData, n)
		for i := range out {
			evs := make([]es.EventData, 1+rng.IntN(4))
			for j := range evs {
				evs[j] = es.EventData{Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, rng.IntN(100))}
			}
			out[i] = evs
		}
		return out
	}
	write := func(batch [][]es.EventData, streams []int) {
		for i, evs := range batch {
			_, err := store.Append(ctx, fmt.Sprintf("counter-%d", streams[i]), es.Any, evs...)
			assert.NoError(t, err)
		}
	}
	streams := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = rng.IntN(25)
		}
		return s
	}
	first := appends(200)
	write(first, streams(len(first)))

	m := newTotals(b, "totals")
	r := newRunner(t, store, cps, m.projection("totals"), projection.WithBatch(32, time.Millisecond))
	interrupted := 0
	for i := range 30 {
		// Events arrive while the runner runs.
		more := appends(rng.IntN(30))
		to := streams(len(more))
		runCtx, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(40_000))*time.Microsecond)
		var wg sync.WaitGroup
		wg.Go(func() { write(more, to) })
		var err error
		if i%4 == 1 {
			err = r.Rebuild(runCtx, nil)
		} else {
			err = r.Run(runCtx)
		}
		cancel()
		wg.Wait()
		if !errors.Is(err, context.DeadlineExceeded) { // an interrupted Rebuild says so
			require.NoError(t, err)
		}
		st, err := r.Status(ctx)
		require.NoError(t, err)
		if st.State == projection.StateRebuilding {
			interrupted++
		}
	}
	t.Logf("%d of the stops interrupted a rebuild", interrupted)
	require.NoError(t, r.CatchUp(ctx))
	want := replay(t, store, db, b.dialect)
	require.NotEmpty(t, want)
	assert.Equal(t, want, read(t, db, "totals"))
}

// childEnv tells the test binary, re-executed by TestKillMidBatch, to run
// the projection over the SQLite file it names.
const childEnv = "SQLPROJ_TEST_KILL_CHILD_DB"

// seeded returns a memstore holding the same log every time: the same
// events, IDs and positions.
func seeded(t testing.TB) *memstore.Store {
	t.Helper()
	store := memstore.MustNew()
	for i := 0; i < 4000; i += 8 {
		evs := make([]es.EventData, 8)
		for j := range evs {
			n := i + j
			evs[j] = es.EventData{ID: uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "event-%d", n)),
				Type: "Added", Data: fmt.Appendf(nil, `{"n":%d}`, n*7919%100)}
		}
		_, err := store.Append(t.Context(), fmt.Sprintf("counter-%d", i/8%41), es.Any, evs...)
		require.NoError(t, err)
	}
	return store
}

// The projection's process is killed (SIGKILL) in the middle of batches,
// restarted each time, then let finish: its read model equals a fresh
// replay.
func TestKillMidBatch(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		killChild(t, path)
		return
	}
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	path := filepath.Join(t.TempDir(), "rm.db")
	rng := rand.New(rand.NewPCG(7, 7))
	run := func(killAt int) (killed, finished bool) {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestKillMidBatch$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(out)
		for seen := 0; sc.Scan(); {
			switch sc.Text() {
			case "mid-batch":
				if seen++; seen == killAt {
					require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
					killed = true
				}
			case "caught-up":
				finished = true
			}
		}
		err = cmd.Wait()
		if !killed {
			require.NoError(t, err, "child: %s", stderr.String())
		}
		return killed, finished
	}
	kills := 0
	for range 20 {
		killed, _ := run(1 + rng.IntN(3))
		if killed {
			kills++
		}
		if kills == 5 {
			break
		}
	}
	require.Equal(t, 5, kills)
	killed, finished := run(0)
	require.False(t, killed)
	require.True(t, finished)

	db := openSQLite(t, path)
	want := replay(t, seeded(t), openSQLite(t, filepath.Join(t.TempDir(), "check.db")), sqlproj.SQLite)
	require.Len(t, want, 41)
	assert.Equal(t, want, read(t, db, "totals"))
}

// killChild is the projection's process of TestKillMidBatch: it says when
// it is in the middle of a batch (half of its rows written) and then
// takes a while, so that the parent's kill lands there.
func killChild(t *testing.T, path string) {
	db := openSQLite(t, path)
	cps := newCheckpoints(t, db, sqlproj.SQLite)
	m := newTotals(sqliteBackend, "totals")
	m.inHandler = func() {
		fmt.Println("mid-batch")
		time.Sleep(20 * time.Millisecond) // a slow handler
	}
	r := newRunner(t, seeded(t), cps, m.projection("totals"), projection.WithBatch(200, time.Second))
	require.NoError(t, r.CatchUp(t.Context()))
	fmt.Println("caught-up")
}
