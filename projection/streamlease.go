package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/internal/backoff"
)

// Leases and membership in the event store, for [StreamCheckpoints].
//
// EventStoreDB has no locks and no clock that its clients share; what it
// has is the optimistic concurrency of appends. So:
//
//   - The lease of key lives in the checkpoint's own stream: every event of
//     it carries the checkpoint and the lease (holder, instance, token). Its
//     holder renews it every third of the time-to-live by appending the
//     same checkpoint with the expected revision of its own last append; a
//     Commit is such an append too. Two appends with the same expected
//     revision cannot both succeed: that is the fence, and no clock is
//     shared between hosts.
//   - A contender reads the stream's last revision. A lease given back (an
//     event without a holder) is taken at once; otherwise the contender
//     takes it over once it has seen the same last revision for a whole
//     time-to-live by its own monotonic clock, appending with that
//     revision. The holder counts its lease lost once the time-to-live has
//     passed since the start of its last successful append: since the
//     contender saw that append's revision only after it started, the
//     holder stops before the contender takes over (clock rates, not
//     clocks, must agree). An append of the holder that fails with
//     [es.ErrWrongExpectedVersion] also means the lease is lost.
//   - An append whose answer was lost is sent again, with the same event ID
//     and expected revision, before the holder's next one: if it had been
//     written, the store answers it idempotently, and the holder does not
//     mistake its own write for a takeover.
//   - Membership needs no fence, only freshness: each member appends a
//     heartbeat to the group's stream every third of the time-to-live, and
//     the members are those whose last heartbeat is within the
//     time-to-live of the stream's newest event. Created times are the
//     server's clock, so comparing them needs no clock of the clients.

// ErrInvalidOption means a [StreamOption] was given a value it does not
// accept.
var ErrInvalidOption = errors.New("projection: invalid option")

// DefaultStreamLeaseTTL is the time-to-live of the leases and memberships
// of [StreamCheckpoints] ([WithStreamLeaseTTL]).
const DefaultStreamLeaseTTL = 15 * time.Second

// minStreamLeaseTTL is the shortest time-to-live WithStreamLeaseTTL takes.
const minStreamLeaseTTL = 100 * time.Millisecond

// Timeouts of StreamCheckpoints' calls that the time-to-live does not
// bound.
const (
	// streamCallTimeout bounds a read of LeaseHolder or Members.
	streamCallTimeout = 5 * time.Second
	// streamReleaseTimeout bounds giving a lease back and leaving a group:
	// past it, they expire by themselves.
	streamReleaseTimeout = time.Second
)

// Names StreamCheckpoints uses in the event store for [Membership].
const (
	// MembersStreamPrefix starts the stream of a group's heartbeats:
	// "eventfold.members-<group>".
	MembersStreamPrefix = "eventfold.members-"
	// MemberEventType is the type of the heartbeats, a system type.
	MemberEventType = "$member"
)

// StreamOption configures [StreamCheckpoints].
type StreamOption func(*streamConfig) error

type streamConfig struct {
	ttl    time.Duration
	holder string
	logger *slog.Logger
}

// WithStreamLeaseTTL sets the time-to-live of leases and memberships
// ([DefaultStreamLeaseTTL] by default). A holder renews its lease, and a
// member its membership, every third of it. A holder that could not renew
// its lease within the time-to-live counts it lost; a contender takes a
// lease over once it has seen it unrenewed for a time-to-live; a member
// that stopped renewing drops out after it. A batch must commit within it.
// It must be at least 100ms.
func WithStreamLeaseTTL(ttl time.Duration) StreamOption {
	return func(c *streamConfig) error {
		if ttl < minStreamLeaseTTL {
			return fmt.Errorf("%w: lease time-to-live %v: want at least %v", ErrInvalidOption, ttl, minStreamLeaseTTL)
		}
		c.ttl = ttl
		return nil
	}
}

// WithStreamLeaseHolder sets the name leases are held under, as status
// reports show it ([Status].Holder): the host name and process ID by
// default ("host:1234"). Any
// non-empty text up to 200 bytes; fencing does not depend on it.
func WithStreamLeaseHolder(name string) StreamOption {
	return func(c *streamConfig) error {
		if name == "" || len(name) > 200 {
			return fmt.Errorf("%w: lease holder %q: want 1 to 200 bytes", ErrInvalidOption, name)
		}
		c.holder = name
		return nil
	}
}

// WithStreamLogger sets the logger of leases and memberships
// (slog.Default() by default). It must not be nil.
func WithStreamLogger(l *slog.Logger) StreamOption {
	return func(c *streamConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

func newStreamConfig(store es.Store, opts []StreamOption) (streamConfig, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	cfg := streamConfig{ttl: DefaultStreamLeaseTTL, holder: host + ":" + strconv.Itoa(os.Getpid()), logger: slog.Default()}
	var errs []error
	if store == nil {
		errs = append(errs, fmt.Errorf("%w: nil es.Store", ErrInvalidOption))
	}
	for _, opt := range opts {
		if opt != nil {
			errs = append(errs, opt(&cfg))
		}
	}
	return cfg, errors.Join(errs...)
}

// streamLease is a lease a StreamCheckpoints holds.
type streamLease struct {
	s           *StreamCheckpoints
	key, stream string

	mu sync.Mutex // held during the holder's appends
	// last is the record of the last append, rev its revision, and expiry
	// the time-to-live after its start.
	last    streamCheckpoint
	rev     uint64
	expiry  time.Time
	pending *es.EventData // an append whose answer was lost

	// loss ends when the lease does: with a cause matching ErrLeaseLost
	// when it is lost, context.Canceled when it is given back.
	loss context.Context
	lose context.CancelCauseFunc
	done chan struct{} // closed when the heartbeat has ended
}

// Lease implements [Leaser]: it blocks until this value holds the lease on
// key, or ctx is done, polling the checkpoint's stream every fifth of the
// time-to-live (at most every second). A lease given back is taken at
// once; one whose holder stopped renewing it (killed, cut off) once its
// stream has not changed for a time-to-live ([WithStreamLeaseTTL]); one
// that this very value held is taken again at once. A failure of the store
// while it waits is logged and tried again; a corrupt checkpoint is
// returned.
//
// The holder renews the lease every third of the time-to-live by an
// append to the checkpoint's stream. held ends with [ErrLeaseLost] when a
// renewal or a commit finds another holder, or when no append succeeded
// within the time-to-live. Commits of the key are fenced (see
// [StreamCheckpoints.Commit]). release gives the lease back by an append
// without a holder.
func (s *StreamCheckpoints) Lease(ctx context.Context, key string) (context.Context, func(), error) {
	poll := min(s.cfg.ttl/5, time.Second)
	var w watch
	failing := false
	for {
		l, err := s.tryLease(ctx, key, &w)
		switch {
		case ctx.Err() != nil:
			if l != nil {
				s.giveBack(ctx, l)
			}
			return nil, nil, ctx.Err()
		case errors.Is(err, ErrCorruptCheckpoint):
			return nil, nil, err
		case err != nil:
			if !failing {
				s.cfg.logger.WarnContext(ctx, "projection: taking a lease failed; trying again", "key", key, "error", err)
			}
			failing = true
		case l != nil:
			held, release := s.hold(ctx, l)
			return held, release, nil
		}
		if err := backoff.Sleep(ctx, poll); err != nil {
			return nil, nil, err
		}
	}
}

// watch is what a contender saw of a held lease: the stream's last
// revision, since when by its monotonic clock.
type watch struct {
	seen  bool
	rev   uint64
	since time.Time
}

// tryLease takes the lease on key if it is free or expired, and records
// it in s.leases; nil if another holds it.
func (s *StreamCheckpoints) tryLease(ctx context.Context, key string, w *watch) (*streamLease, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ttl)
	defer cancel()
	// One take at a time, so that a lease of this value, taken but not
	// yet recorded, is not taken for one it no longer holds.
	s.taking.Lock()
	defer s.taking.Unlock()
	rec, ev, ok, err := s.last(ctx, key)
	if err != nil {
		return nil, err
	}
	expected := es.NoStream
	if ok {
		expected = es.Exact(ev.Revision)
		if !s.free(key, rec) {
			now := time.Now()
			if !w.seen || w.rev != ev.Revision {
				*w = watch{seen: true, rev: ev.Revision, since: now}
				return nil, nil
			}
			if now.Sub(w.since) < s.cfg.ttl {
				return nil, nil
			}
		}
	}
	previous := rec.Holder
	rec.Holder, rec.Instance, rec.Token = s.cfg.holder, s.instance, rec.Token+1
	stream := CheckpointStreamPrefix + key
	start := time.Now()
	res, err := s.store.Append(ctx, stream, expected, s.event(rec))
	switch {
	case errors.Is(err, es.ErrWrongExpectedVersion):
		*w = watch{} // another moved first: watch again
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("projection: lease %q: %w", key, err)
	}
	if res.Revision == 0 {
		if err := s.keepLast(ctx, stream); err != nil {
			s.cfg.logger.WarnContext(ctx, "projection: setting the metadata of a checkpoint stream failed", "stream", stream, "error", err)
		}
	}
	if previous != "" && previous != s.cfg.holder {
		s.cfg.logger.InfoContext(ctx, "projection: took over a lease its holder no longer renewed", "key", key, "holder", previous)
	}
	l := &streamLease{s: s, key: key, stream: stream, last: rec, rev: res.Revision, expiry: start.Add(s.cfg.ttl),
		done: make(chan struct{})}
	l.loss, l.lose = context.WithCancelCause(context.WithoutCancel(ctx))
	s.mu.Lock()
	s.leases[key] = l
	s.mu.Unlock()
	return l, nil
}

// free reports whether the lease recorded in rec can be taken at once:
// nobody holds it, or this value held it and no longer does.
func (s *StreamCheckpoints) free(key string, rec streamCheckpoint) bool {
	if rec.Holder == "" {
		return true
	}
	if rec.Instance != s.instance {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[key] == nil
}

// hold starts the heartbeat of l; it returns the lease's context and its
// release.
func (s *StreamCheckpoints) hold(ctx context.Context, l *streamLease) (context.Context, func()) {
	held, cancelHeld := context.WithCancelCause(ctx)
	unwatch := context.AfterFunc(l.loss, func() { cancelHeld(context.Cause(l.loss)) })
	beat, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	go s.heartbeat(beat, l)
	var once sync.Once
	return held, func() {
		once.Do(func() {
			stopBeat()
			<-l.done
			unwatch()
			cancelHeld(nil)
			s.giveBack(ctx, l)
		})
	}
}

// giveBack forgets l and, unless it was lost, appends the checkpoint
// without a holder, so that the next holder need not wait. ctx only
// carries values.
func (s *StreamCheckpoints) giveBack(ctx context.Context, l *streamLease) {
	s.mu.Lock()
	delete(s.leases, l.key)
	s.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lostErr() != nil {
		return // nothing to give back
	}
	l.lose(nil)
	rec := l.last
	rec.Holder, rec.Instance = "", ""
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), streamReleaseTimeout)
	defer cancel()
	if err := l.sendPending(ctx); err == nil {
		_, err = s.store.Append(ctx, l.stream, es.Exact(l.rev), s.event(rec))
		if err == nil {
			return
		}
	}
	s.cfg.logger.WarnContext(ctx, "projection: giving a lease back failed; it expires by itself", "key", l.key,
		"ttl", s.cfg.ttl)
}

// heartbeat renews l every third of the time-to-live after its last
// append, until ctx ends or l is lost; after a failure, every tenth of the
// time-to-live until it expires.
func (s *StreamCheckpoints) heartbeat(ctx context.Context, l *streamLease) {
	defer close(l.done)
	every := s.cfg.ttl / 3
	var failed error
	for {
		l.mu.Lock()
		next := l.expiry.Add(every - s.cfg.ttl)
		if failed != nil {
			next = time.Now().Add(s.cfg.ttl / 10)
		}
		if l.expiry.Before(next) {
			next = l.expiry
		}
		l.mu.Unlock()
		if backoff.Sleep(ctx, time.Until(next)) != nil {
			return
		}
		l.mu.Lock()
		err := l.appendLocked(ctx, l.last)
		l.mu.Unlock()
		switch {
		case ctx.Err() != nil || errors.Is(err, ErrLeaseLost):
			return
		case err != nil && failed == nil:
			s.cfg.logger.WarnContext(ctx, "projection: renewing a lease failed; trying again until it expires",
				"key", l.key, "error", err)
		case err == nil && failed != nil:
			s.cfg.logger.InfoContext(ctx, "projection: lease renewed again", "key", l.key)
		}
		failed = err
	}
}

// lostErr returns, once l is lost, an error matching ErrFenced and
// ErrLeaseLost.
func (l *streamLease) lostErr() error {
	if cause := context.Cause(l.loss); errors.Is(cause, ErrLeaseLost) {
		return errors.Join(ErrFenced, cause)
	}
	return nil
}

// lost ends l: its holder stops committing. l.mu is held.
func (l *streamLease) lost(why error) {
	err := fmt.Errorf("%w: %q: %w", ErrLeaseLost, l.key, why)
	l.s.cfg.logger.Error("projection: lease lost", "key", l.key, "error", why)
	l.lose(err)
}

// appendLocked appends rec with the expected revision of l's last append,
// within l's expiry, and renews l if it succeeds. l.mu is held.
func (l *streamLease) appendLocked(ctx context.Context, rec streamCheckpoint) error {
	if err := l.lostErr(); err != nil {
		return err
	}
	if !time.Now().Before(l.expiry) {
		l.lost(fmt.Errorf("not renewed within its time-to-live of %v", l.s.cfg.ttl))
		return l.lostErr()
	}
	ctx, cancel := context.WithDeadline(ctx, l.expiry)
	defer cancel()
	err := l.sendPending(ctx)
	if err == nil {
		ev := l.s.event(rec)
		start := time.Now()
		var res es.AppendResult
		res, err = l.s.store.Append(ctx, l.stream, es.Exact(l.rev), ev)
		switch {
		case err == nil:
			l.last, l.rev, l.expiry = rec, res.Revision, start.Add(l.s.cfg.ttl)
			return nil
		case !errors.Is(err, es.ErrWrongExpectedVersion):
			l.pending = &ev
			l.last = rec // what the pending append writes
		}
	}
	switch {
	case errors.Is(err, es.ErrWrongExpectedVersion):
		l.lost(errors.New("another holder took it over"))
		return l.lostErr()
	case !time.Now().Before(l.expiry):
		l.lost(fmt.Errorf("not renewed within its time-to-live of %v: %w", l.s.cfg.ttl, err))
		return l.lostErr()
	}
	return fmt.Errorf("projection: lease %q: %w", l.key, err)
}

// sendPending sends again the append whose answer was lost, if any: the
// store answers it idempotently if it was written. l.mu is held.
func (l *streamLease) sendPending(ctx context.Context) error {
	if l.pending == nil {
		return nil
	}
	start := time.Now()
	res, err := l.s.store.Append(ctx, l.stream, es.Exact(l.rev), *l.pending)
	if err != nil {
		return err
	}
	l.pending, l.rev, l.expiry = nil, res.Revision, start.Add(l.s.cfg.ttl)
	return nil
}

// commit is [StreamCheckpoints.Commit] of l's key.
func (l *streamLease) commit(ctx context.Context, cp Checkpoint, apply func(NoTx) error) error {
	l.mu.Lock()
	lost := l.lostErr()
	l.mu.Unlock()
	if lost != nil {
		return fmt.Errorf("projection: save checkpoint %q: %w", l.key, lost)
	}
	if apply != nil {
		if err := apply(NoTx{}); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.last
	rec.set(cp)
	if err := l.appendLocked(ctx, rec); err != nil {
		return fmt.Errorf("projection: save checkpoint %q: %w", l.key, err)
	}
	return nil
}

// leaseOf returns the lease this value holds on key, if any.
func (s *StreamCheckpoints) leaseOf(key string) *streamLease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[key]
}

// LeaseHolder implements [LeaseHolders]: the holder recorded in the last
// event of key's checkpoint stream, or "" when the lease was given back.
// Since nothing but a time-to-live without renewal tells a dead holder,
// one whose last renewal is older than twice the time-to-live by this
// host's clock counts as gone (an estimate, for status reports only).
func (s *StreamCheckpoints) LeaseHolder(ctx context.Context, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, streamCallTimeout)
	defer cancel()
	rec, ev, ok, err := s.last(ctx, key)
	switch {
	case err != nil:
		return "", err
	case !ok || rec.Holder == "":
		return "", nil
	case rec.Instance == s.instance:
		if s.leaseOf(key) == nil {
			return "", nil
		}
	case time.Since(ev.Created) > 2*s.cfg.ttl:
		return "", nil
	}
	return rec.Holder, nil
}

// memberRecord is the data of a heartbeat of a member.
type memberRecord struct {
	Member string `json:"member"`
	// Left is set on the last heartbeat of a member that left.
	Left bool `json:"left,omitempty"`
}

// Join implements [Membership]: member appends a heartbeat to the stream
// "eventfold.members-<group>" at once and then every third of the
// time-to-live ([WithStreamLeaseTTL]), until leave is called or ctx ends;
// it then appends a last one that says it left, so that it drops out of
// [StreamCheckpoints.Members] at once. A member killed without leaving
// drops out once its last heartbeat is older than the time-to-live. The
// stream keeps its events for twice the time-to-live (`$maxAge`, in whole
// seconds), so that it does not grow without bound. A heartbeat that
// fails is logged and tried again at the next one.
//
// Member names must be unique to one replica: Join does not check that
// the name is free.
func (s *StreamCheckpoints) Join(ctx context.Context, group, member string) (leave func(), err error) {
	if group == "" || member == "" {
		return nil, fmt.Errorf("projection: join %q as %q: empty group or member name", group, member)
	}
	stream := MembersStreamPrefix + group
	if err := s.beat(ctx, stream, memberRecord{Member: member}); err != nil {
		return nil, fmt.Errorf("projection: join %q as %q: %w", group, member, err)
	}
	beatCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		failing := false
		for backoff.Sleep(beatCtx, s.cfg.ttl/3) == nil {
			err := s.beat(beatCtx, stream, memberRecord{Member: member})
			switch {
			case beatCtx.Err() != nil:
			case err != nil && !failing:
				s.cfg.logger.WarnContext(ctx, "projection: a heartbeat of a member failed; trying again", "group", group,
					"member", member, "error", err)
			case err == nil && failing:
				s.cfg.logger.InfoContext(ctx, "projection: the heartbeats of a member succeed again", "group", group,
					"member", member)
			}
			failing = err != nil
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), streamReleaseTimeout)
		defer cancel()
		if err := s.beat(lctx, stream, memberRecord{Member: member, Left: true}); err != nil {
			s.cfg.logger.WarnContext(ctx, "projection: leaving a group failed; the member drops out after the time-to-live",
				"group", group, "member", member, "error", err)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { stop(); <-done }) }, nil
}

// beat appends a heartbeat of a member, within the time-to-live, and sets
// the stream's `$maxAge` when it created the stream.
func (s *StreamCheckpoints) beat(ctx context.Context, stream string, rec memberRecord) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ttl)
	defer cancel()
	data, _ := json.Marshal(rec) // of plain fields: cannot fail
	res, err := s.store.Append(ctx, stream, es.Any, es.EventData{Type: MemberEventType, Data: data})
	if err == nil && res.Revision == 0 {
		maxAge := max(time.Second, (2*s.cfg.ttl+time.Second-1)/time.Second*time.Second)
		_, err = es.SetStreamMetadata(ctx, s.store, stream, es.Any, es.StreamMetadata{MaxAge: maxAge})
	}
	return err
}

// Members implements [Membership]: the members of group whose last
// heartbeat is within the time-to-live of the newest heartbeat of the
// group's stream (both times by the store's clock), except those that
// left, sorted. The caller is usually a member itself, whose heartbeats
// keep the newest one fresh.
func (s *StreamCheckpoints) Members(ctx context.Context, group string) ([]string, error) {
	if group == "" {
		return nil, fmt.Errorf("projection: members of %q: empty group name", group)
	}
	ctx, cancel := context.WithTimeout(ctx, streamCallTimeout)
	defer cancel()
	var newest time.Time
	seen := make(map[string]bool)
	out := []string{}
	read := s.store.ReadStream(ctx, MembersStreamPrefix+group, es.ReadStreamOptions{Direction: es.Backwards, From: es.StreamEnd})
	for ev, err := range read {
		if errors.Is(err, es.ErrStreamNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("projection: members of %q: %w", group, err)
		}
		var rec memberRecord
		if ev.Type != MemberEventType || json.Unmarshal(ev.Data, &rec) != nil || rec.Member == "" {
			continue // not a heartbeat
		}
		if newest.IsZero() {
			newest = ev.Created
		}
		if newest.Sub(ev.Created) > s.cfg.ttl {
			break
		}
		if !seen[rec.Member] && !rec.Left {
			out = append(out, rec.Member)
		}
		seen[rec.Member] = true
	}
	slices.Sort(out)
	return out, nil
}
