package bus

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// retry is the bus's retry middleware: Watermill's middleware.Retry as the
// bus configured it (ResetContextOnRetry, a ShouldRetry predicate, its
// exponential backoff with the same waits), except that a message handled
// at the first try costs nothing more than the call: the backoff's state
// exists only once a try has failed.
type retry struct {
	retries    int
	first, max time.Duration
	jitter     float64 // the randomization factor of each wait
	permanent  func(error) bool
	logger     watermill.LoggerAdapter
	stopping   <-chan struct{} // closed when the bus stops: no more retries
}

func (r retry) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		if ctx.Err() != nil {
			return nil, r.stopped(ctx, 1)
		}
		out, err := h(msg)
		if err == nil {
			return out, nil
		}
		return r.again(ctx, msg, h, out, err)
	}
}

// again retries msg after the first try failed with err.
func (r retry) again(ctx context.Context, msg *message.Message, h message.HandlerFunc, out []*message.Message, err error) ([]*message.Message, error) {
	b := backoff{r: r, current: r.first}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for tries := 1; ; tries++ {
		// Watermill's Retry draws a wait for its ShouldRetry, then another
		// for the actual wait: the backoff advances twice per failure.
		b.next()
		if r.permanent(err) || tries > r.retries {
			return out, err
		}
		if cause := context.Cause(ctx); cause != nil {
			return out, cause
		}
		wait := b.next()
		if r.logger != nil {
			r.logger.Error("Error occurred, retrying", err, watermill.LogFields{
				"retry_no": tries, "max_retries": r.retries, "wait_time": wait})
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return out, context.Cause(ctx)
		case <-r.stopping:
			return out, err
		}
		if ctx.Err() != nil {
			return nil, r.stopped(ctx, tries+1)
		}
		msg.SetContext(ctx) // the last try's context is cancelled
		if out, err = h(msg); err == nil {
			return out, nil
		}
	}
}

// stopped is the error of a try that did not start because ctx is done:
// the context's error on the last try, else its cause.
func (r retry) stopped(ctx context.Context, try int) error {
	if try > r.retries {
		return ctx.Err()
	}
	return context.Cause(ctx)
}

// backoff computes the waits as cenkalti/backoff's ExponentialBackOff does
// with a multiplier of 2: a random value within ±jitter of the current
// interval, which then doubles, up to max.
type backoff struct {
	r       retry
	current time.Duration
}

func (b *backoff) next() time.Duration {
	if b.current == 0 {
		b.current = b.r.first
	}
	d := b.current
	if b.r.jitter != 0 {
		delta := b.r.jitter * float64(d)
		lo, hi := float64(d)-delta, float64(d)+delta
		d = time.Duration(lo + rand.Float64()*(hi-lo+1))
	}
	if float64(b.current) >= float64(b.r.max)/2 {
		b.current = b.r.max
	} else {
		b.current *= 2
	}
	return d
}
