package bus_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/bus"
)

// meet returns a command handler that returns once k commands are inside
// it at once, or fails after the test's wait.
func meet(k int) func(ctx context.Context, cmd Deposit) error {
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	return func(ctx context.Context, cmd Deposit) error {
		mu.Lock()
		arrived++
		if arrived == k {
			close(all)
		}
		n := arrived
		mu.Unlock()
		select {
		case <-all:
			return nil
		case <-time.After(wait):
			return fmt.Errorf("only %d of %d commands came in at once", n, k)
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d commands came in at once: %w", n, k, ctx.Err())
		}
	}
}

// requestAll sends k deposits at once as requests and returns their
// errors.
func requestAll(t *testing.T, b *bus.Bus, k int) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() {
			_, errs[i] = bus.Request[struct{}](ctx, b, Deposit{ID: fmt.Sprint(i), Amount: 1})
		})
	}
	wg.Wait()
	return errs
}

// On the default transport, commands of one type are handled
// concurrently: DefaultCommandConcurrency of them by default, n with
// WithCommandConcurrency(n).
func TestCommandConcurrencyGoChannel(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []bus.Option
		k    int
	}{
		{"default", nil, 4},
		{"default all", nil, bus.DefaultCommandConcurrency},
		{"explicit", []bus.Option{bus.WithCommandConcurrency(3)}, 3},
		{"shared topic", []bus.Option{bus.WithSharedCommandTopic(), bus.WithCommandConcurrency(3)}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := bus.New(commandTypes(), eventTypes(), append([]bus.Option{bus.WithLogger(testLogger())}, tc.opts...)...)
			require.NoError(t, err)
			defer b.Close()
			require.NoError(t, bus.HandleCommand(b, meet(tc.k)))
			require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Withdraw) error { return nil }))
			run(t, b)
			for _, err := range requestAll(t, b, tc.k) {
				require.NoError(t, err)
			}
			assert.Zero(t, b.Dropped())
		})
	}
}

// No more than n commands of one type are handled at once; with
// WithCommandConcurrency(1), one at a time, as on one topic.
func TestCommandConcurrencyBound(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()), bus.WithCommandConcurrency(n))
			require.NoError(t, err)
			defer b.Close()
			var mu sync.Mutex
			inside, most := 0, 0
			require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error {
				mu.Lock()
				inside++
				most = max(most, inside)
				mu.Unlock()
				runtime.Gosched()
				mu.Lock()
				inside--
				mu.Unlock()
				return nil
			}))
			run(t, b)
			for _, err := range requestAll(t, b, 16) {
				require.NoError(t, err)
			}
			mu.Lock()
			defer mu.Unlock()
			assert.LessOrEqual(t, most, n)
			if n == 1 {
				assert.Equal(t, 1, most)
			}
		})
	}
}

func TestWithCommandConcurrencyValidates(t *testing.T) {
	for _, n := range []int{0, -1} {
		_, err := bus.New(commandTypes(), eventTypes(), bus.WithCommandConcurrency(n))
		require.ErrorIs(t, err, bus.ErrInvalidOption)
		assert.ErrorContains(t, err, "command concurrency")
	}
}
