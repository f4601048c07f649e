package eventstoredb

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"github.com/eventfold/eventfold/internal/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SubscribeAll implements [es.Store]. Filters run on the server, which also
// sends the checkpoints.
func (s *Store) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if _, err := esdriver.Matcher(opts.Filter); err != nil {
			yield(es.Message{}, err)
			return
		}
		o := esdb.SubscribeToAllOptions{}
		if f := opts.Filter; f != nil {
			o.Filter = &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Prefixes: f.Prefixes, Regex: f.Regex}
			if f.On == es.FilterStreamName {
				o.Filter.Type = esdb.StreamFilterType
			}
			// A checkpoint every window × multiplier events scanned.
			o.MaxSearchWindow, o.CheckpointInterval = int(esdriver.CheckpointInterval(f)), 1
		}
		after := opts.From
		if after == es.End {
			// Resolve "the end" now: a resubscription must start where this
			// subscription started, not at a later end.
			head, err := s.head(ctx)
			if err != nil {
				yield(es.Message{}, err)
				return
			}
			after = head
		}
		s.subscribe(ctx, "$all", yield, func(ctx context.Context, cl *esdb.Client) (*esdb.Subscription, error) {
			o.From = toAllPosition(after)
			return cl.SubscribeToAll(ctx, o)
		}, func(m es.Message) {
			if m.Kind == es.KindEvent || (m.Kind == es.KindCheckpoint && m.Position.Compare(after) > 0) {
				after = m.Position
			}
		})
	}
}

// head returns the position of the last event of `$all`, or es.Start.
func (s *Store) head(ctx context.Context) (es.Position, error) {
	ev, ok, err := es.Head(ctx, s)
	if err != nil || !ok {
		return es.Start, err
	}
	return ev.Position, nil
}

// SubscribeStream implements [es.Store].
func (s *Store) SubscribeStream(ctx context.Context, stream string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if err := es.ValidateStreamName(stream); err != nil {
			yield(es.Message{}, err)
			return
		}
		var from esdb.StreamPosition = esdb.Start{}
		if rev, ok := opts.From.Revision(); ok {
			from = esdb.Revision(rev)
		} else if opts.From.IsEnd() {
			if last, ok := s.lastRevision(ctx, stream); ok {
				from = esdb.Revision(last)
			}
		}
		s.subscribe(ctx, stream, yield, func(ctx context.Context, cl *esdb.Client) (*esdb.Subscription, error) {
			return cl.SubscribeToStream(ctx, stream, esdb.SubscribeToStreamOptions{From: from})
		}, func(m es.Message) {
			if m.Kind == es.KindEvent {
				from = esdb.Revision(m.Event.Revision)
			}
		})
	}
}

// subscribe runs subscriptions opened by open, delivering their messages to
// yield and resubscribing when one drops. advance records each delivered
// message, so that open resumes right after it. Opening is bounded by the
// call timeout; a subscription that cannot be opened counts as a failure.
func (s *Store) subscribe(ctx context.Context, name string, yield func(es.Message, error) bool,
	open func(context.Context, *esdb.Client) (*esdb.Subscription, error), advance func(es.Message)) {
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
			yield(es.Message{}, fmt.Errorf("eventstoredb: stream %q: %w", name, ctxErr))
			return
		}
		if !transient(err) || failures+1 >= s.attempts { // tries in all: the first and the resubscriptions
			yield(es.Message{}, err)
			return
		}
		failures++
		s.logger.WarnContext(ctx, "eventstoredb: subscription dropped; resubscribing", "stream", name, "attempt", failures, "error", err)
		wait := backoff.Policy{First: s.backoff, Max: s.maxBackoff, Jitter: 0.5}.Wait(failures)
		if err := backoff.Sleep(ctx, wait); err != nil {
			yield(es.Message{}, fmt.Errorf("eventstoredb: stream %q: %w", name, err))
			return
		}
	}
}

// subscribeOnce opens one subscription and pumps it until it drops or the
// consumer stops (nil).
func (s *Store) subscribeOnce(ctx context.Context, name string, yield func(es.Message, error) bool,
	open func(context.Context, *esdb.Client) (*esdb.Subscription, error), advance func(es.Message)) (bool, error) {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	waitCtx, cancelWait := s.bound(subCtx)
	var sub *esdb.Subscription
	release, err := s.call(ctx, waitCtx, subCtx, name, true, func(ctx context.Context, cl *esdb.Client) (func(), error) {
		x, err := open(ctx, cl)
		if err != nil {
			return nil, err
		}
		sub = x
		return func() { _ = x.Close() }, nil
	})
	cancelWait()
	if err != nil {
		return false, s.mapError(ctx, name, es.Any, err)
	}
	delivered, err := s.pump(ctx, name, sub, yield, advance)
	// A drop with Unavailable retires the client at once, before another
	// call makes it rediscover (see docs/eventstoredb.md).
	release(err)
	return delivered, err
}

// pump delivers a subscription's messages until it drops (the error) or the
// consumer stops (nil).
func (s *Store) pump(ctx context.Context, name string, sub *esdb.Subscription, yield func(es.Message, error) bool, advance func(es.Message)) (delivered bool, err error) {
	defer sub.Close()
	tombstoned := false
	for {
		ev := sub.Recv()
		var m es.Message
		switch {
		case ev.EventAppeared != nil:
			if ev.EventAppeared.Event == nil {
				continue // a link to a deleted event
			}
			m = es.Message{Kind: es.KindEvent, Event: fromRecorded(ev.EventAppeared.Event)}
			m.Position = m.Event.Position
			tombstoned = m.Event.Type == es.EventTypeStreamDeleted && m.Event.Stream == name
		case ev.CheckPointReached != nil:
			m = es.Message{Kind: es.KindCheckpoint, Position: fromPosition(*ev.CheckPointReached)}
		case ev.CaughtUp != nil:
			m = es.Message{Kind: es.KindCaughtUp}
		case ev.SubscriptionDropped != nil:
			err := ev.SubscriptionDropped.Error
			if ctx.Err() != nil {
				return delivered, ctx.Err()
			}
			if tombstoned || status.Code(err) == codes.FailedPrecondition {
				return delivered, esdriver.StreamDeleted(name)
			}
			return delivered, s.mapError(ctx, name, es.Any, err)
		default:
			continue // fell behind: nothing for the consumer
		}
		delivered = true
		advance(m)
		if !yield(m, nil) {
			return delivered, nil
		}
	}
}

// transient reports whether a subscription that failed with err should be
// resumed.
func transient(err error) bool {
	if IsTransient(err) {
		return true
	}
	var e *esdb.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdb.ErrorUnavailable, esdb.ErrorAborted, esdb.ErrorCodeNotLeader:
			return true
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.Internal:
		return true
	}
	return false
}

// transientClientError reports whether a client error is a failure to reach
// the server, or to get its answer in time, that may pass.
func transientClientError(err error) bool {
	if connectionLost(err) {
		return true
	}
	var e *esdb.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdb.ErrorCodeDeadlineExceeded, esdb.ErrorCodeNotLeader, esdb.ErrorAborted:
			return true
		}
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}
