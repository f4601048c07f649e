package bus_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/bus"
)

// A failing handler is tried attempts times in all. The waits between
// tries are eventfold's one backoff: first before the first retry, doubled
// each time up to max, ±20%. Registered errors and a context that is done
// stop the retries.
func TestRetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()),
			bus.WithRetry(5, 100*time.Millisecond, 500*time.Millisecond), bus.WithErrors(ErrInsufficientFunds))
		require.NoError(t, err)
		defer b.Close()
		var tries []time.Time
		fail := errors.New("temporary")
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error {
			tries = append(tries, time.Now())
			if cmd.ID == "domain" {
				return ErrInsufficientFunds
			}
			return fail
		}))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Run(ctx) }()
		<-b.Running()

		require.NoError(t, b.Send(t.Context(), Deposit{ID: "1"}), "returns once the message is dropped")
		require.Len(t, tries, 5)
		within := func(d, lo, hi time.Duration) {
			t.Helper()
			assert.True(t, d >= lo && d <= hi, "waited %v, want %v to %v", d, lo, hi)
		}
		within(tries[1].Sub(tries[0]), 80*time.Millisecond, 120*time.Millisecond)
		within(tries[2].Sub(tries[1]), 160*time.Millisecond, 240*time.Millisecond)
		within(tries[3].Sub(tries[2]), 320*time.Millisecond, 480*time.Millisecond)
		within(tries[4].Sub(tries[3]), 400*time.Millisecond, 600*time.Millisecond) // max, ±20%
		assert.Equal(t, uint64(1), b.Dropped())

		tries = nil
		require.NoError(t, b.Send(t.Context(), Deposit{ID: "domain"}))
		assert.Len(t, tries, 1, "a registered error is not retried")

		tries = nil
		_, err = bus.Request[struct{}](t.Context(), b, Deposit{ID: "1"})
		require.ErrorIs(t, err, fail)
		assert.Len(t, tries, 1, "a request is answered, not retried")

		cancel()
		require.NoError(t, <-done)
	})
}
