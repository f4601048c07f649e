package bus

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventfold/eventfold/internal/backoff"
)

// retry is the bus's retry middleware: Watermill's middleware.Retry as the
// bus configured it (ResetContextOnRetry, a ShouldRetry predicate), with
// eventfold's one backoff (internal/backoff: the wait before retry n is
// first doubled n-1 times, at most max, ±spread), and without a cost on a
// message handled at the first try.
type retry struct {
	attempts  int // tries in all, the first included
	policy    backoff.Policy
	permanent func(error) bool
	logger    watermill.LoggerAdapter
	stopping  <-chan struct{} // closed when the bus stops: no more retries
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
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for tries := 1; ; tries++ {
		if r.permanent(err) || tries >= r.attempts {
			return out, err
		}
		if cause := context.Cause(ctx); cause != nil {
			return out, cause
		}
		wait := r.policy.Wait(tries)
		if r.logger != nil {
			r.logger.Error("Error occurred, retrying", err, watermill.LogFields{
				"retry_no": tries, "max_retries": r.attempts - 1, "wait_time": wait})
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
	if try >= r.attempts {
		return ctx.Err()
	}
	return context.Cause(ctx)
}
