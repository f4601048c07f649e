// Package backoff is the one exponential backoff of eventfold: the waits
// between the retries of runners, repositories and store clients.
package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff: the wait before retry n (from 1) is
// First doubled n-1 times, at most Max, of which the last Jitter part is
// random, then spread by ±Spread.
//
// Every package counts tries the same way: a setting of attempts is the
// number of tries in all, the first included, so that a call tried n times
// waits n-1 times, before retries 1 to n-1.
type Policy struct {
	// First is the wait before the first retry, before jitter.
	First time.Duration
	// Max caps the waits, before jitter; zero or less: no cap.
	Max time.Duration
	// Jitter, from 0 to 1, is the random part of each wait: a wait of d
	// becomes a random duration from d×(1−Jitter) to d. 0 waits d
	// exactly; 1 is full jitter (from 0 to d), which spreads out most the
	// retries of clients that failed together.
	Jitter float64
	// Spread, from 0 to 1, makes each wait d (after Jitter) a random
	// duration from d×(1−Spread) to d×(1+Spread): the randomization
	// factor of Watermill's Retry middleware and of
	// cenkalti/backoff, which the bus keeps. 0 spreads nothing.
	Spread float64
}

// Wait returns the wait before retry attempt (from 1; less counts as 1).
func (p Policy) Wait(attempt int) time.Duration {
	n := min(max(attempt, 1)-1, 62)
	d := time.Duration(math.MaxInt64)
	if p.First <= math.MaxInt64>>n {
		d = p.First << n
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	if d <= 0 {
		return 0
	}
	j := min(max(p.Jitter, 0), 1)
	random := time.Duration(float64(d) * j)
	d = d - random + rand.N(random+1)
	return spread(d, min(max(p.Spread, 0), 1))
}

// spread returns a random duration from d×(1−s) to d×(1+s), at most the
// largest duration.
func spread(d time.Duration, s float64) time.Duration {
	delta := time.Duration(float64(d) * s)
	if delta <= 0 {
		return d
	}
	lo, hi := d-delta, time.Duration(math.MaxInt64)
	if d <= math.MaxInt64-delta {
		hi = d + delta
	}
	n := hi - lo
	if n < math.MaxInt64 {
		n++
	}
	return lo + rand.N(n)
}

// Sleep waits d, or until ctx is done: then it returns ctx's error. A wait
// of zero or less returns at once, with ctx's error if it is done.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
