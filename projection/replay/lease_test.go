package replay_test

import (
	"bytes"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventfold/eventfold/projection/replay"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a buffer that a test reads while the tool writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRebuildWaitsForTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, "a")
		// Another process runs the projection: it holds the lease.
		_, release, err := f.cps.Lease(t.Context(), "a/v1")
		require.NoError(t, err)

		var stdout, stderr syncBuffer
		done := make(chan int)
		go func() {
			done <- replay.Run(t.Context(), []string{"rebuild", "a"}, &stdout, &stderr, f.ps...)
		}()
		time.Sleep(10 * time.Second) // in the bubble's time
		synctest.Wait()
		assert.Equal(t, "a: waiting for the projection's lease, which another process holds (stop it, or rebuild with --blue-green beside it); Ctrl-C gives up\n", stdout.String())
		resets, _ := f.models["a"].counts()
		assert.Zero(t, resets, "nothing is done without the lease")

		release()
		require.Equal(t, replay.ExitOK, <-done, stderr.String())
		assert.Regexp(t, `\Aa: waiting for .*\n(a: \d+ events, .*\n)*a: rebuilt in place: 10 events .*\n\z`, stdout.String())
		assert.Equal(t, f.want, f.models["a"].version(1))
	})
}
