package eventstoredb

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// AllStream is the name of the global log, `$all`, for a [Group] on it.
const AllStream = "$all"

// Strategy is how a persistent subscription group shares its messages
// among its consumers (connected subscriptions, typically the replicas of
// a service). Whatever the strategy, a message that is not acknowledged
// (a nack with retry, a consumer that leaves, a message timeout) is
// delivered again later, possibly to another consumer and after messages
// that followed it: handlers must be idempotent.
type Strategy string

const (
	// RoundRobin hands each message to the next consumer with room in its
	// buffer. It spreads the load evenly and guarantees no order: two
	// events of one stream can be handled at the same time by two
	// consumers. The default.
	RoundRobin Strategy = "RoundRobin"
	// DispatchToSingle hands messages to one consumer until its buffer is
	// full, then to the next one. With one consumer, or a buffer of one,
	// the messages are handled in the order of the source; otherwise no
	// order is guaranteed.
	DispatchToSingle Strategy = "DispatchToSingle"
	// Pinned hands every event of one stream to the same consumer (the
	// server hashes the event's stream name to a consumer), so that while
	// the set of consumers is stable the events of a stream are handled by
	// one consumer, in stream order. When a consumer joins or leaves,
	// streams move, and for a moment two consumers may hold events of one
	// stream. Retried messages are delivered after later ones.
	Pinned Strategy = "Pinned"
	// PinnedByCorrelation is Pinned by the event's `$correlationId`
	// (falling back to its stream) instead of its stream: the events of one
	// correlation (a process, a saga) reach one consumer, in order, while
	// the set of consumers is stable. The v4 client cannot ask for it; the
	// Store creates such groups over a gRPC connection of its own, so only
	// a Store from [Open] can, and [Store.UpdateGroup] cannot switch a
	// group to it (delete and create the group instead).
	PinnedByCorrelation Strategy = "PinnedByCorrelation"
)

// NackAction is what the server does with a message a consumer rejects.
type NackAction int

const (
	// NackRetry delivers the message again, after the messages already
	// queued, until the group's MaxRetryCount; the server then parks it.
	NackRetry NackAction = iota + 1
	// NackPark moves the message to the group's parked messages at once,
	// for [Store.ReplayParked] after a fix.
	NackPark
	// NackSkip drops the message as if acknowledged.
	NackSkip
	// NackStop ends the consumer's subscription; the message is retried.
	NackStop
)

func (a NackAction) client() (esdb.NackAction, error) {
	switch a {
	case NackRetry:
		return esdb.NackActionRetry, nil
	case NackPark:
		return esdb.NackActionPark, nil
	case NackSkip:
		return esdb.NackActionSkip, nil
	case NackStop:
		return esdb.NackActionStop, nil
	}
	return 0, fmt.Errorf("%w: nack action %d", es.ErrInvalidArgument, a)
}

// Group names a persistent subscription group: a group name on one stream
// (a category stream such as `$ce-order` too) or on [AllStream].
type Group struct {
	// Stream is the stream the group reads, or AllStream.
	Stream string
	// Name is the group's name, unique per stream: the consumers that
	// share its messages (the replicas of one service) use the same one.
	Name string
}

func (g Group) all() bool { return g.Stream == AllStream }

func (g Group) String() string { return g.Name + "@" + g.Stream }

func (g Group) validate() error {
	if g.Name == "" {
		return fmt.Errorf("%w: group %q: empty group name", es.ErrInvalidArgument, g)
	}
	if g.all() {
		return nil
	}
	return es.ValidateStreamName(g.Stream)
}

// Start is where a new group starts reading, inclusive. The zero value is
// the beginning of its source.
type Start struct {
	end      bool
	revision *uint64
	position *es.Position
}

// StartAtEnd starts a group with the events written after its creation.
func StartAtEnd() Start { return Start{end: true} }

// StartAtRevision starts a group on a stream at revision r.
func StartAtRevision(r uint64) Start { return Start{revision: &r} }

// StartAtPosition starts a group on `$all` at position p.
func StartAtPosition(p es.Position) Start { return Start{position: &p} }

// GroupSettings are the settings of a persistent subscription group. Zero
// fields take EventStoreDB's defaults.
type GroupSettings struct {
	// Start is where the group starts reading; the beginning by default.
	// It counts only while the group has no checkpoint.
	Start Start
	// Filter selects the events of a group on `$all` (by stream name or
	// event type, prefixes or a regex); nil for every event. Groups on a
	// stream cannot have one. Only at creation.
	Filter *es.Filter
	// Strategy shares the messages among consumers; RoundRobin by default.
	Strategy Strategy
	// MaxRetryCount is how many times a message is delivered again (after
	// a nack with retry or a timeout) before the server parks it; 10 by
	// default. Negative values are invalid; use NoRetry for none.
	MaxRetryCount int
	// MessageTimeout is how long the server waits for a consumer's ack
	// before it delivers a message again; 30s by default.
	MessageTimeout time.Duration
	// MaxSubscriberCount bounds the consumers; 0 means no bound.
	MaxSubscriberCount int
	// ResolveLinks delivers the events that links point to.
	ResolveLinks bool
	// CheckpointAfter, MinCheckpointCount and MaxCheckpointCount control
	// how often the server records the group's progress (2s, 10 and 1000
	// by default).
	CheckpointAfter                        time.Duration
	MinCheckpointCount, MaxCheckpointCount int
	// LiveBufferSize, ReadBatchSize and HistoryBufferSize size the
	// server's buffers (500, 20 and 500 by default).
	LiveBufferSize, ReadBatchSize, HistoryBufferSize int
}

// NoRetry as GroupSettings.MaxRetryCount parks a message at its first
// nack or timeout.
const NoRetry = -1

// clientSettings converts s to the client's settings.
func (s GroupSettings) clientSettings() (esdb.PersistentSubscriptionSettings, error) {
	c := esdb.SubscriptionSettingsDefault()
	switch s.Strategy {
	case "", RoundRobin:
		c.ConsumerStrategyName = esdb.ConsumerStrategyRoundRobin
	case DispatchToSingle:
		c.ConsumerStrategyName = esdb.ConsumerStrategyDispatchToSingle
	case Pinned, PinnedByCorrelation: // the latter is sent apart (createRaw)
		c.ConsumerStrategyName = esdb.ConsumerStrategyPinned
	default:
		return c, fmt.Errorf("%w: consumer strategy %q", es.ErrInvalidArgument, s.Strategy)
	}
	var errs []error
	set := func(dst *int32, v int, name string) {
		if v < 0 || v > 1<<31-1 {
			errs = append(errs, fmt.Errorf("%w: %s %d", es.ErrInvalidArgument, name, v))
		} else if v > 0 {
			*dst = int32(v)
		}
	}
	switch {
	case s.MaxRetryCount == NoRetry:
		c.MaxRetryCount = 0
	default:
		set(&c.MaxRetryCount, s.MaxRetryCount, "max retry count")
	}
	set(&c.MaxSubscriberCount, s.MaxSubscriberCount, "max subscriber count")
	set(&c.CheckpointLowerBound, s.MinCheckpointCount, "min checkpoint count")
	set(&c.CheckpointUpperBound, s.MaxCheckpointCount, "max checkpoint count")
	set(&c.LiveBufferSize, s.LiveBufferSize, "live buffer size")
	set(&c.ReadBatchSize, s.ReadBatchSize, "read batch size")
	set(&c.HistoryBufferSize, s.HistoryBufferSize, "history buffer size")
	set(&c.MessageTimeout, int(s.MessageTimeout.Milliseconds()), "message timeout")
	set(&c.CheckpointAfter, int(s.CheckpointAfter.Milliseconds()), "checkpoint after")
	c.ResolveLinkTos = s.ResolveLinks
	return c, errors.Join(errs...)
}

// ErrGroupNotFound means the persistent subscription group does not exist.
var ErrGroupNotFound = errors.New("eventstoredb: persistent subscription group not found")

// ErrGroupExists means a group of that name exists on that stream already.
var ErrGroupExists = errors.New("eventstoredb: persistent subscription group exists")

// ErrMaxConsumers means the group has MaxSubscriberCount consumers already.
var ErrMaxConsumers = errors.New("eventstoredb: persistent subscription group has its maximum of consumers")

// ErrSubscriptionDropped is returned by [GroupMessage.Ack] and
// [GroupMessage.Nack] once the subscription that delivered the message has
// ended: the server delivers the message again.
var ErrSubscriptionDropped = errors.New("eventstoredb: persistent subscription dropped")

// mapGroupError turns the client's errors about group g into ours.
func (s *Store) mapGroupError(ctx context.Context, g Group, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("eventstoredb: group %s: %w", g, ctxErr)
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) || errors.Is(err, es.ErrInvalidArgument) {
		return err
	}
	var e *esdb.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdb.ErrorCodeResourceNotFound:
			return fmt.Errorf("%w: %s", ErrGroupNotFound, g)
		case esdb.ErrorCodeResourceAlreadyExists:
			return fmt.Errorf("%w: %s", ErrGroupExists, g)
		}
	}
	switch status.Code(err) {
	case codes.NotFound:
		return fmt.Errorf("%w: %s", ErrGroupNotFound, g)
	case codes.AlreadyExists:
		return fmt.Errorf("%w: %s", ErrGroupExists, g)
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s: %v", ErrMaxConsumers, g, err)
	case codes.InvalidArgument:
		return fmt.Errorf("%w: group %s: %v", es.ErrInvalidArgument, g, err)
	}
	if s.core.TransientClientError(err) {
		return fmt.Errorf("%w: group %s: %w", ErrUnavailable, g, err)
	}
	return fmt.Errorf("eventstoredb: group %s: %w", g, err)
}

// groupCall runs a unary call about group g with the call timeout and
// maps its error.
func (s *Store) groupCall(ctx context.Context, g Group, f func(ctx context.Context, cl *esdb.Client) error) error {
	if err := g.validate(); err != nil {
		return err
	}
	if err := s.core.Unary(ctx, g.Stream, f); err != nil {
		return s.mapGroupError(ctx, g, err)
	}
	return nil
}

// CreateGroup creates a persistent subscription group; [ErrGroupExists] if
// it exists. Consumers then share its messages with [Store.SubscribeGroup].
func (s *Store) CreateGroup(ctx context.Context, g Group, settings GroupSettings) error {
	cs, err := settings.clientSettings()
	if err != nil {
		return err
	}
	if err := g.validate(); err != nil {
		return err
	}
	if settings.Filter != nil {
		if !g.all() {
			return fmt.Errorf("%w: group %s: a filter needs a group on %s", es.ErrInvalidArgument, g, AllStream)
		}
		if _, err := esdriver.Matcher(settings.Filter); err != nil {
			return err
		}
	}
	if settings.Strategy == PinnedByCorrelation {
		return s.createRaw(ctx, g, settings, cs)
	}
	return s.groupCall(ctx, g, func(ctx context.Context, cl *esdb.Client) error {
		if g.all() {
			o := esdb.PersistentAllSubscriptionOptions{Settings: &cs, StartFrom: allStart(settings.Start)}
			if f := settings.Filter; f != nil {
				o.Filter = clientFilter(f)
				o.MaxSearchWindow = int(esdriver.CheckpointInterval(f))
			}
			return cl.CreatePersistentSubscriptionToAll(ctx, g.Name, o)
		}
		return cl.CreatePersistentSubscription(ctx, g.Stream, g.Name,
			esdb.PersistentStreamSubscriptionOptions{Settings: &cs, StartFrom: streamStart(settings.Start)})
	})
}

// EnsureGroup creates group g unless it exists (created meanwhile by
// another replica, for example); it leaves an existing group's settings
// as they are.
func (s *Store) EnsureGroup(ctx context.Context, g Group, settings GroupSettings) error {
	err := s.CreateGroup(ctx, g, settings)
	if errors.Is(err, ErrGroupExists) {
		return nil
	}
	return err
}

// UpdateGroup changes the settings of a group (not its filter). The server
// drops its consumers, which resubscribe. It cannot switch a group to
// PinnedByCorrelation.
func (s *Store) UpdateGroup(ctx context.Context, g Group, settings GroupSettings) error {
	if settings.Strategy == PinnedByCorrelation {
		return fmt.Errorf("%w: group %s: the v4 protocol cannot update a group to %s: delete and create it", es.ErrInvalidArgument, g, PinnedByCorrelation)
	}
	cs, err := settings.clientSettings()
	if err != nil {
		return err
	}
	return s.groupCall(ctx, g, func(ctx context.Context, cl *esdb.Client) error {
		if g.all() {
			return cl.UpdatePersistentSubscriptionToAll(ctx, g.Name,
				esdb.PersistentAllSubscriptionOptions{Settings: &cs, StartFrom: allStart(settings.Start)})
		}
		return cl.UpdatePersistentSubscription(ctx, g.Stream, g.Name,
			esdb.PersistentStreamSubscriptionOptions{Settings: &cs, StartFrom: streamStart(settings.Start)})
	})
}

// DeleteGroup deletes a group; its consumers are dropped and their
// iterators end with [ErrGroupNotFound]. [ErrGroupNotFound] if it does not
// exist.
func (s *Store) DeleteGroup(ctx context.Context, g Group) error {
	return s.groupCall(ctx, g, func(ctx context.Context, cl *esdb.Client) error {
		if g.all() {
			return cl.DeletePersistentSubscriptionToAll(ctx, g.Name, esdb.DeletePersistentSubscriptionOptions{})
		}
		return cl.DeletePersistentSubscription(ctx, g.Stream, g.Name, esdb.DeletePersistentSubscriptionOptions{})
	})
}

// ReplayParked delivers a group's parked messages again, the oldest first;
// limit bounds how many (0: all of them).
func (s *Store) ReplayParked(ctx context.Context, g Group, limit int) error {
	if limit < 0 {
		return fmt.Errorf("%w: replay limit %d", es.ErrInvalidArgument, limit)
	}
	return s.groupCall(ctx, g, func(ctx context.Context, cl *esdb.Client) error {
		o := esdb.ReplayParkedMessagesOptions{StopAt: limit}
		if g.all() {
			return cl.ReplayParkedMessagesToAll(ctx, g.Name, o)
		}
		return cl.ReplayParkedMessages(ctx, g.Stream, g.Name, o)
	})
}

// GroupInfo describes a group as the server reports it.
type GroupInfo struct {
	Group    Group
	Status   string
	Strategy Strategy
	// MaxRetryCount and MessageTimeout are the group's settings.
	MaxRetryCount  int
	MessageTimeout time.Duration
	// Consumers is the number of connected consumers.
	Consumers int
	// InFlight counts the messages delivered and not yet acknowledged;
	// Parked the parked ones; Delivered every delivery so far.
	InFlight, Parked, Delivered int64
}

func fromClientInfo(i esdb.PersistentSubscriptionInfo) GroupInfo {
	info := GroupInfo{Group: Group{Stream: i.EventSource, Name: i.GroupName}, Status: i.Status, Consumers: len(i.Connections)}
	if st := i.Settings; st != nil {
		info.Strategy = Strategy(st.ConsumerStrategyName)
		info.MaxRetryCount = int(st.MaxRetryCount)
		info.MessageTimeout = time.Duration(st.MessageTimeout) * time.Millisecond
	}
	if st := i.Stats; st != nil {
		info.InFlight, info.Parked, info.Delivered = st.TotalInFlightMessages, st.ParkedMessagesCount, st.TotalItems
	}
	return info
}

// GroupInfo returns what the server reports of group g.
func (s *Store) GroupInfo(ctx context.Context, g Group) (GroupInfo, error) {
	var info *esdb.PersistentSubscriptionInfo
	err := s.groupCall(ctx, g, func(ctx context.Context, cl *esdb.Client) (err error) {
		if g.all() {
			info, err = cl.GetPersistentSubscriptionInfoToAll(ctx, g.Name, esdb.GetPersistentSubscriptionOptions{})
		} else {
			info, err = cl.GetPersistentSubscriptionInfo(ctx, g.Stream, g.Name, esdb.GetPersistentSubscriptionOptions{})
		}
		return err
	})
	if err != nil {
		return GroupInfo{}, err
	}
	return fromClientInfo(*info), nil
}

// ListGroups returns the groups on stream (AllStream for those on `$all`),
// or every group when stream is empty.
func (s *Store) ListGroups(ctx context.Context, stream string) ([]GroupInfo, error) {
	g := Group{Stream: stream, Name: "*"}
	if stream == "" {
		g.Stream = AllStream // for validation and messages only
	}
	var list []esdb.PersistentSubscriptionInfo
	err := s.groupCall(ctx, g, func(ctx context.Context, cl *esdb.Client) (err error) {
		switch stream {
		case "":
			list, err = cl.ListAllPersistentSubscriptions(ctx, esdb.ListPersistentSubscriptionsOptions{})
		case AllStream:
			list, err = cl.ListPersistentSubscriptionsToAll(ctx, esdb.ListPersistentSubscriptionsOptions{})
		default:
			list, err = cl.ListPersistentSubscriptionsForStream(ctx, stream, esdb.ListPersistentSubscriptionsOptions{})
		}
		return err
	})
	if errors.Is(err, ErrGroupNotFound) {
		return nil, nil // no group on that stream
	}
	if err != nil {
		return nil, err
	}
	out := make([]GroupInfo, len(list))
	for i, x := range list {
		out[i] = fromClientInfo(x)
	}
	return out, nil
}

func allStart(st Start) esdb.AllPosition {
	switch {
	case st.end:
		return esdb.End{}
	case st.position != nil:
		return toAllPosition(*st.position)
	}
	return esdb.Start{}
}

func streamStart(st Start) esdb.StreamPosition {
	switch {
	case st.end:
		return esdb.End{}
	case st.revision != nil:
		return esdb.Revision(*st.revision)
	}
	return esdb.Start{}
}

func clientFilter(f *es.Filter) *esdb.SubscriptionFilter {
	cf := &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Prefixes: f.Prefixes, Regex: f.Regex}
	if f.On == es.FilterStreamName {
		cf.Type = esdb.StreamFilterType
	}
	return cf
}

// SubscribeGroupOptions configure a consumer of a group.
type SubscribeGroupOptions struct {
	// BufferSize is how many messages the server hands this consumer
	// before it waits for acks; 10 by default.
	BufferSize int
}

// GroupMessage is an event a group delivered to a consumer. Settle it once,
// with Ack or Nack; a message left unsettled is delivered again after the
// group's message timeout, or when its consumer leaves.
type GroupMessage struct {
	// Event is the event (the linked event when the group resolves links).
	Event es.RecordedEvent
	// RetryCount is how many times the message was delivered before.
	RetryCount int

	resolved *esdb.ResolvedEvent
	sub      *groupSub
}

// Ack acknowledges the message: the group will not deliver it again. It
// fails with [ErrSubscriptionDropped] when the subscription that delivered
// it has ended (the server then delivers it again).
func (m *GroupMessage) Ack() error {
	return m.sub.settle(func(ps *esdb.PersistentSubscription) error { return ps.Ack(m.resolved) })
}

// Nack rejects the message; the action says what the server does with it.
func (m *GroupMessage) Nack(action NackAction, reason string) error {
	a, err := action.client()
	if err != nil {
		return err
	}
	return m.sub.settle(func(ps *esdb.PersistentSubscription) error { return ps.Nack(reason, a, m.resolved) })
}

// groupSub is one subscription's handle for settling its messages from any
// goroutine: a gRPC stream takes one sender at a time.
type groupSub struct {
	mu    sync.Mutex
	ps    *esdb.PersistentSubscription
	ended bool
}

func (g *groupSub) settle(f func(*esdb.PersistentSubscription) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		return ErrSubscriptionDropped
	}
	if err := f(g.ps); err != nil {
		return fmt.Errorf("%w: %w", ErrSubscriptionDropped, err)
	}
	return nil
}

func (g *groupSub) end() {
	g.mu.Lock()
	g.ended = true
	g.mu.Unlock()
	_ = g.ps.Close()
}

// SubscribeGroup connects a consumer to group g and yields the messages the
// server hands it, each to be settled with Ack or Nack. Several consumers
// (in one process or in several) share the group's messages as its
// [Strategy] says. When the subscription drops (a lost connection, a
// server restart, the group's update), the iterator connects again with
// backoff, as [WithResubscribe] says, and the server delivers again what
// the consumer had not acknowledged; after the last attempt fails it
// yields the error. A group that does not exist yields [ErrGroupNotFound].
// Stopping the loop closes the subscription.
func (s *Store) SubscribeGroup(ctx context.Context, g Group, opts SubscribeGroupOptions) iter.Seq2[*GroupMessage, error] {
	return func(yield func(*GroupMessage, error) bool) {
		if err := g.validate(); err != nil {
			yield(nil, err)
			return
		}
		if opts.BufferSize < 0 || opts.BufferSize > 1<<31-1 {
			yield(nil, fmt.Errorf("%w: buffer size %d", es.ErrInvalidArgument, opts.BufferSize))
			return
		}
		o := esdb.SubscribeToPersistentSubscriptionOptions{BufferSize: uint32(opts.BufferSize)}
		failures := 0
		for {
			delivered, err := s.subscribeGroupOnce(ctx, g, o, yield)
			if err == nil {
				return // the consumer stopped
			}
			if delivered {
				failures = 0
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				yield(nil, fmt.Errorf("eventstoredb: group %s: %w", g, ctxErr))
				return
			}
			if !s.transientGroupError(err) || failures+1 >= s.core.Attempts {
				yield(nil, err)
				return
			}
			failures++
			s.core.Logger.WarnContext(ctx, "eventstoredb: persistent subscription dropped; resubscribing", "group", g.String(), "attempt", failures, "error", err)
			if err := s.core.Sleep(ctx, failures); err != nil {
				yield(nil, fmt.Errorf("eventstoredb: group %s: %w", g, err))
				return
			}
		}
	}
}

// transientGroupError reports whether a consumer that failed with err
// should connect again: a lost connection, or the server dropping the
// consumer (the group was updated or restarted).
func (s *Store) transientGroupError(err error) bool {
	if errors.Is(err, errGroupDropped) {
		return true
	}
	return s.core.Transient(err)
}

var errGroupDropped = errors.New("eventstoredb: the server dropped the consumer")

// subscribeGroupOnce connects one consumer and pumps it until it drops (the
// error) or the consumer stops (nil).
func (s *Store) subscribeGroupOnce(ctx context.Context, g Group, o esdb.SubscribeToPersistentSubscriptionOptions,
	yield func(*GroupMessage, error) bool) (bool, error) {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	waitCtx, cancelWait := s.core.Bound(subCtx)
	var ps *esdb.PersistentSubscription
	release, err := s.core.Call(ctx, waitCtx, subCtx, g.Stream, true, func(ctx context.Context, cl *esdb.Client) (func(), error) {
		var err error
		if g.all() {
			ps, err = cl.SubscribeToPersistentSubscriptionToAll(ctx, g.Name, o)
		} else {
			ps, err = cl.SubscribeToPersistentSubscription(ctx, g.Stream, g.Name, o)
		}
		if err != nil {
			return nil, err
		}
		x := ps
		return func() { _ = x.Close() }, nil
	})
	cancelWait()
	if err != nil {
		return false, s.mapGroupError(ctx, g, err)
	}
	sub := &groupSub{ps: ps}
	delivered, err := s.pumpGroup(ctx, g, sub, yield)
	release(err)
	return delivered, err
}

// pumpGroup yields a consumer's messages until it drops or the consumer
// stops (nil).
func (s *Store) pumpGroup(ctx context.Context, g Group, sub *groupSub, yield func(*GroupMessage, error) bool) (delivered bool, err error) {
	defer sub.end()
	for {
		ev := sub.ps.Recv()
		switch {
		case ev.EventAppeared != nil:
			re := ev.EventAppeared.Event
			rec := re.Event
			if rec == nil {
				rec = re.Link
			}
			if rec == nil {
				continue
			}
			delivered = true
			m := &GroupMessage{Event: fromRecorded(rec), RetryCount: ev.EventAppeared.RetryCount, resolved: re, sub: sub}
			if !yield(m, nil) {
				return delivered, nil
			}
		case ev.SubscriptionDropped != nil:
			err := ev.SubscriptionDropped.Error
			if ctx.Err() != nil {
				return delivered, ctx.Err()
			}
			if status.Code(err) == codes.Canceled {
				return delivered, fmt.Errorf("%w: group %s: %w", errGroupDropped, g, err)
			}
			return delivered, s.mapGroupError(ctx, g, err)
		}
	}
}
