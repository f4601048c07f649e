package redisproj_test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/redisproj"
)

// childEnv tells the test binary, re-executed by TestKillMidBatch, to run
// the projection under the key prefix it names.
const childEnv = "REDISPROJ_TEST_KILL_CHILD_PREFIX"

// seeded returns a memstore holding the same log every time: the same
// events, IDs and positions.
func seeded(t testing.TB) *memstore.Store {
	t.Helper()
	store := memstore.MustNew()
	for i := 0; i < 2000; i += 8 {
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
// while its handler queues writes, restarted each time, then let finish:
// its read model equals a fresh replay.
func TestKillMidBatch(t *testing.T) {
	if prefix := os.Getenv(childEnv); prefix != "" {
		killChild(t, prefix)
		return
	}
	client := newClient(t)
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	prefix := testPrefix(t, client)
	rng := rand.New(rand.NewPCG(7, 8))
	run := func(killAt int) (killed, finished bool) {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestKillMidBatch$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+prefix)
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
		if killed, _ := run(1 + rng.IntN(3)); killed {
			kills++
		}
		if kills == 4 {
			break
		}
	}
	require.Equal(t, 4, kills)
	killed, finished := run(0)
	require.False(t, killed)
	require.True(t, finished)

	cps := newCheckpoints(t, client, prefix)
	want := replay(t, client, seeded(t))
	require.Len(t, want, 41)
	assert.Equal(t, want, read(t, client, cps.Prefix("totals", 1)))
}

// killChild is the projection's process of TestKillMidBatch: it says when
// it is in the middle of a batch (half of its writes queued) and then
// takes a while, so that the parent's kill lands there. Its lease, never
// given back, is taken over by the next child once it expires.
func killChild(t *testing.T, prefix string) {
	client := newClient(t)
	cps := newCheckpoints(t, client, prefix, redisproj.WithLeaseTTL(500*time.Millisecond))
	m := &totals{inHandler: func() error {
		fmt.Println("mid-batch")
		time.Sleep(20 * time.Millisecond) // a slow handler
		return nil
	}}
	r := newRunner(t, seeded(t), cps, m.projection("totals"), projection.WithBatch(200, time.Second))
	require.NoError(t, r.CatchUp(t.Context()))
	fmt.Println("caught-up")
}
