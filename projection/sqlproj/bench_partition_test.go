package sqlproj_test

// Partitioned projections across processes, on PostgreSQL (events in
// es/sqlstore/postgres, checkpoints and leases in sqlproj's
// PgxCheckpoints, one pgx pool per process):
//
//	EVENTFOLD_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run '^$' -bench 'IOBoundProjection|Takeover' -benchtime 3x ./projection/sqlproj/
//
// The sessions commit with synchronous_commit off (see ioLog).
//
// BenchmarkIOBoundProjection catches a projection up on 60,000 events (of
// 400 streams, appended 10 at a time) whose
// handler waits 2 ms per batch of 100 events (standing in for a remote
// database): one runner in this process, against 4 partitions shared by 2
// replica processes (started before the clock, which runs from the
// command that starts the projection until every partition has reached
// the head). events/s is the throughput.
//
// BenchmarkTakeover kills (SIGKILL) one of two replica processes sharing 4
// partitions, with a lease time-to-live of 2 s, and measures the time
// until the other holds every partition: ms/takeover, and ttls, that time
// in lease time-to-lives.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// benchReplicaEnv, in a child process of the benchmarks, holds the
// connection string and the lease time-to-live of the replica, as
// "<ttl>|<dsn>".
const benchReplicaEnv = "EVENTFOLD_SQLPROJ_BENCH_REPLICA"

const (
	ioEvents    = 60_000
	ioBatch     = 100
	ioPerBatch  = 2 * time.Millisecond
	ioStreams   = 400
	benchTTLFor = 2 * time.Second
)

// ioProjection is the I/O-bound projection named name, with partitions.
func ioProjection(name string, partitions int) projection.Projection[pgx.Tx] {
	return projection.Projection[pgx.Tx]{
		Name: name, Partitions: partitions, Categories: []string{"counter"},
		Handle: func(ctx context.Context, tx pgx.Tx, b projection.Batch) error {
			time.Sleep(ioPerBatch) // the remote database's answer
			return nil
		},
	}
}

// benchReplicaMain is a child process of the benchmarks (TestMain runs it
// when benchReplicaEnv is set): it reads commands on its standard input,
// "run NAME" to run the projection NAME until the next command, and
// answers "ok" to each; it ends when its input closes.
func benchReplicaMain(spec string) error {
	ttlText, dsn, _ := strings.Cut(spec, "|")
	ttl, err := time.ParseDuration(ttlText)
	if err != nil {
		return err
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	store, err := postgres.New(ctx, pool)
	if err != nil {
		return err
	}
	defer store.Close()
	cps, err := sqlproj.NewPgx(ctx, pool, sqlproj.WithLeaseTTL(ttl), sqlproj.WithLeasePoll(10*time.Millisecond))
	if err != nil {
		return err
	}
	types, err := es.NewRegistry(es.Type[Added]("Added"))
	if err != nil {
		return err
	}
	stop := func() error { return nil }
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ok")
	for in.Scan() {
		if err := stop(); err != nil {
			return err
		}
		stop = func() error { return nil }
		if name, ok := strings.CutPrefix(in.Text(), "run "); ok {
			g, err := projection.NewPartitioned(store, cps, types, ioProjection(name, 4),
				projection.WithLogger(quiet), projection.WithBatch(ioBatch, 100*time.Millisecond), projection.WithRebalance(10*time.Millisecond))
			if err != nil {
				return err
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- g.Run(rctx) }()
			stop = func() error { cancel(); return <-done }
		}
		fmt.Println("ok")
	}
	return stop()
}

// benchReplica is a replica process of the benchmarks.
type benchReplica struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startBenchReplica(b *testing.B, dsn string, ttl time.Duration) *benchReplica {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), benchReplicaEnv+"="+ttl.String()+"|"+dsn)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	require.NoError(b, err)
	out, err := cmd.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())
	r := &benchReplica{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() {
		r.in.Close()
		_ = r.cmd.Wait()
	})
	r.await(b)
	return r
}

// do sends a command and waits for its answer.
func (r *benchReplica) do(b *testing.B, cmd string) {
	b.Helper()
	_, err := fmt.Fprintln(r.in, cmd)
	require.NoError(b, err)
	r.await(b)
}

func (r *benchReplica) await(b *testing.B) {
	b.Helper()
	for r.out.Scan() {
		if r.out.Text() == "ok" {
			return
		}
	}
	b.Fatalf("replica %d ended: %v", r.cmd.Process.Pid, r.out.Err())
}

// ioLog returns a database with the I/O benchmark's events, and its store.
func ioLog(b *testing.B) (string, *pgxpool.Pool, es.Store, es.Position) {
	// Commits without waiting for the disk (synchronous_commit off), in
	// the runner's and the replicas' sessions alike: the benchmark's I/O
	// is the handler's 2 ms, and the flushes of this machine's disk vary
	// from one run to the next by more than the difference measured.
	dsn := postgresSchema(b) + "&synchronous_commit=off" // a run-time parameter for pgx
	pool := openPool(b, dsn)
	store, err := postgres.New(b.Context(), pool)
	require.NoError(b, err)
	b.Cleanup(func() { store.Close() })
	var last es.AppendResult
	for i := 0; i < ioEvents; i += 10 {
		evs := make([]es.EventData, 10)
		for j := range evs {
			evs[j] = es.EventData{Type: "Added", Data: []byte(`{"n":1}`)}
		}
		last, err = store.Append(b.Context(), fmt.Sprintf("counter-%d", i/10%ioStreams), es.Any, evs...)
		require.NoError(b, err)
	}
	return dsn, pool, store, last.Position
}

func BenchmarkIOBoundProjection(b *testing.B) {
	dsn, pool, store, head := ioLog(b)
	cps := newPgxCheckpoints(b, pool)
	b.Run("runner=1", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			r, err := projection.NewRunner(store, cps, types(b), ioProjection(fmt.Sprintf("single%d", benchRuns.Add(1)), 0),
				projection.WithLogger(quiet), projection.WithBatch(ioBatch, 100*time.Millisecond))
			require.NoError(b, err)
			require.NoError(b, r.CatchUp(b.Context()))
		}
		b.ReportMetric(float64(ioEvents*b.N)/time.Since(start).Seconds(), "events/s")
	})
	for _, processes := range []int{1, 2} {
		b.Run(fmt.Sprintf("partitions=4,processes=%d", processes), func(b *testing.B) { ioPartitioned(b, dsn, cps, head, processes) })
	}
}

// ioPartitioned runs the I/O-bound projection, 4 partitions, in processes
// replica processes.
func ioPartitioned(b *testing.B, dsn string, cps *sqlproj.PgxCheckpoints, head es.Position, processes int) {
	{
		var replicas []*benchReplica
		for range processes {
			replicas = append(replicas, startBenchReplica(b, dsn, 15*time.Second))
		}
		b.ResetTimer()
		var elapsed time.Duration
		for range b.N {
			name := fmt.Sprintf("parts%d", benchRuns.Add(1))
			start := time.Now()
			var wg sync.WaitGroup
			for _, r := range replicas {
				wg.Go(func() { r.do(b, "run "+name) })
			}
			wg.Wait()
			// Poll the checkpoints (4 queries) every 5 ms: Status would
			// add its own load to the database's.
			for at := 0; at < 4; {
				cp, err := cps.Load(b.Context(), fmt.Sprintf("%s/v1/p%d", name, at))
				require.NoError(b, err)
				if cp.Position.Compare(head) >= 0 {
					at++
					continue
				}
				time.Sleep(5 * time.Millisecond)
			}
			elapsed += time.Since(start)
			for _, r := range replicas {
				r.do(b, "stop")
			}
		}
		b.ReportMetric(float64(ioEvents*b.N)/elapsed.Seconds(), "events/s")
	}
}

func BenchmarkTakeover(b *testing.B) {
	dsn, pool, store, _ := ioLog(b)
	var took time.Duration
	for range b.N {
		name := fmt.Sprintf("takeover%d", benchRuns.Add(1))
		a, c := startBenchReplica(b, dsn, benchTTLFor), startBenchReplica(b, dsn, benchTTLFor)
		a.do(b, "run "+name)
		c.do(b, "run "+name)
		watch, err := projection.NewPartitioned(store, newPgxCheckpoints(b, pool), types(b), ioProjection(name, 4))
		require.NoError(b, err)
		held := func() map[string]int {
			st, err := watch.Status(b.Context())
			require.NoError(b, err)
			out := map[string]int{}
			for _, p := range st.Parts {
				out[p.Holder]++
			}
			return out
		}
		victim := fmt.Sprintf(":%d", a.cmd.Process.Pid)
		for {
			h := held()
			if len(h) == 2 && h[""] == 0 {
				break // shared, each partition held
			}
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		require.NoError(b, a.cmd.Process.Signal(syscall.SIGKILL))
		for {
			h := held()
			if len(h) == 1 && h[""] == 0 && !strings.HasSuffix(firstKey(h), victim) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		took += time.Since(start)
		c.do(b, "stop")
	}
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "ms/takeover")
	b.ReportMetric(took.Seconds()/float64(b.N)/benchTTLFor.Seconds(), "ttls")
}

// benchRuns numbers the projections of the benchmarks, so that each run
// starts from the beginning of the log.
var benchRuns atomic.Int64

func firstKey(m map[string]int) string {
	for k := range m {
		return k
	}
	return ""
}
