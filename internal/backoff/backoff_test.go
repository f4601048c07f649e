package backoff_test

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/eventfold/eventfold/internal/backoff"
)

func TestWait(t *testing.T) {
	exact := backoff.Policy{First: 100 * time.Millisecond, Max: time.Second}
	for attempt, want := range map[int]time.Duration{
		-1: 100 * time.Millisecond, 0: 100 * time.Millisecond, 1: 100 * time.Millisecond,
		2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 1000: time.Second,
	} {
		assert.Equal(t, want, exact.Wait(attempt), "attempt %d", attempt)
	}
	uncapped := backoff.Policy{First: time.Hour}
	assert.Equal(t, time.Duration(math.MaxInt64), uncapped.Wait(1000), "no cap, no overflow")
	assert.Zero(t, backoff.Policy{}.Wait(3))

	for range 1000 {
		half := backoff.Policy{First: time.Second, Max: 4 * time.Second, Jitter: 0.5}.Wait(2)
		assert.GreaterOrEqual(t, half, time.Second)
		assert.LessOrEqual(t, half, 2*time.Second)
		full := backoff.Policy{First: time.Second, Jitter: 1}.Wait(1)
		assert.GreaterOrEqual(t, full, time.Duration(0))
		assert.LessOrEqual(t, full, time.Second)
		odd := backoff.Policy{First: time.Second, Jitter: 7}.Wait(1) // clamped to 1
		assert.LessOrEqual(t, odd, time.Second)
	}
}

func TestSpread(t *testing.T) {
	seen := map[bool]bool{}
	for range 1000 {
		w := backoff.Policy{First: time.Second, Max: 2 * time.Second, Spread: 0.2}.Wait(2)
		assert.GreaterOrEqual(t, w, 1600*time.Millisecond)
		assert.LessOrEqual(t, w, 2400*time.Millisecond)
		seen[w > 2*time.Second] = true

		both := backoff.Policy{First: time.Second, Jitter: 0.5, Spread: 0.5}.Wait(1)
		assert.GreaterOrEqual(t, both, 250*time.Millisecond, "jitter, then spread")
		assert.LessOrEqual(t, both, 1500*time.Millisecond)

		odd := backoff.Policy{First: time.Second, Spread: 9}.Wait(1) // clamped to 1
		assert.LessOrEqual(t, odd, 2*time.Second)
	}
	assert.True(t, seen[true] && seen[false], "a spread wait falls on both sides of the exponential one")

	huge := backoff.Policy{First: time.Hour, Spread: 1}.Wait(1000)
	assert.GreaterOrEqual(t, huge, time.Duration(0), "no overflow")
	assert.Zero(t, backoff.Policy{Spread: 0.5}.Wait(1))
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		assert.NoError(t, backoff.Sleep(t.Context(), 3*time.Second))
		assert.Equal(t, 3*time.Second, time.Since(start))

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		assert.ErrorIs(t, backoff.Sleep(ctx, time.Hour), context.DeadlineExceeded)
		assert.Equal(t, 4*time.Second, time.Since(start), "ends with its context")
		assert.ErrorIs(t, backoff.Sleep(ctx, 0), context.DeadlineExceeded)
		assert.NoError(t, backoff.Sleep(t.Context(), -1))
	})
}
