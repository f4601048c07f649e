package esdbcore

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"github.com/eventfold/eventfold/internal/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Subscription is a client's catch-up subscription, as a Driver's package
// adapts it.
type Subscription interface {
	// Recv returns the next message; ok is false for one that carries
	// nothing for the consumer; dropped is the client's error when the
	// subscription dropped.
	Recv() (m es.Message, ok bool, dropped error)
	Close()
}

// Subscribe runs subscriptions opened by open, delivering their messages
// to yield and resubscribing when one drops. advance records each
// delivered message, so that open resumes right after it. Opening is
// bounded by the call timeout; a subscription that cannot be opened counts
// as a failure.
func (s *Core[C]) Subscribe(ctx context.Context, name string, yield func(es.Message, error) bool,
	open func(context.Context, C) (Subscription, error), advance func(es.Message)) {
	failures := 0
	for {
		delivered, err := s.subscribeOnce(ctx, name, yield, open, advance)
		if err == nil {
			return // the consumer stopped
		}
		if delivered {
			failures = 0
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			yield(es.Message{}, fmt.Errorf("%s: stream %q: %w", s.d.Name, name, ctxErr))
			return
		}
		if !s.Transient(err) || failures+1 >= s.Attempts { // tries in all: the first and the resubscriptions
			yield(es.Message{}, err)
			return
		}
		failures++
		s.Logger.WarnContext(ctx, s.d.Name+": subscription dropped; resubscribing", "stream", name, "attempt", failures, "error", err)
		if err := s.Sleep(ctx, failures); err != nil {
			yield(es.Message{}, fmt.Errorf("%s: stream %q: %w", s.d.Name, name, err))
			return
		}
	}
}

// Sleep waits before resubscription n, or until ctx ends.
func (s *Core[C]) Sleep(ctx context.Context, n int) error {
	return backoff.Sleep(ctx, backoff.Policy{First: s.Backoff, Max: s.MaxBackoff, Jitter: 0.5}.Wait(n))
}

// subscribeOnce opens one subscription and pumps it until it drops or the
// consumer stops (nil).
func (s *Core[C]) subscribeOnce(ctx context.Context, name string, yield func(es.Message, error) bool,
	open func(context.Context, C) (Subscription, error), advance func(es.Message)) (bool, error) {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	waitCtx, cancelWait := s.Bound(subCtx)
	var sub Subscription
	release, err := s.Call(ctx, waitCtx, subCtx, name, true, func(ctx context.Context, cl C) (func(), error) {
		x, err := open(ctx, cl)
		if err != nil {
			return nil, err
		}
		sub = x
		return x.Close, nil
	})
	cancelWait()
	if err != nil {
		return false, s.MapError(ctx, name, es.Any, err)
	}
	delivered, err := s.pump(ctx, name, sub, yield, advance)
	// A drop with Unavailable retires the client at once, before another
	// call makes it rediscover (see docs/eventstoredb.md).
	release(err)
	return delivered, err
}

// pump delivers a subscription's messages until it drops (the error) or the
// consumer stops (nil).
func (s *Core[C]) pump(ctx context.Context, name string, sub Subscription, yield func(es.Message, error) bool, advance func(es.Message)) (delivered bool, err error) {
	defer sub.Close()
	tombstoned := false
	for {
		m, ok, dropped := sub.Recv()
		if dropped != nil {
			if ctx.Err() != nil {
				return delivered, ctx.Err()
			}
			if tombstoned || status.Code(dropped) == codes.FailedPrecondition {
				return delivered, esdriver.StreamDeleted(name)
			}
			return delivered, s.MapError(ctx, name, es.Any, dropped)
		}
		if !ok {
			continue // fell behind: nothing for the consumer
		}
		if m.Kind == es.KindEvent {
			tombstoned = m.Event.Type == es.EventTypeStreamDeleted && m.Event.Stream == name
		}
		delivered = true
		advance(m)
		if !yield(m, nil) {
			return delivered, nil
		}
	}
}
