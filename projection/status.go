package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/es"
)

// State is what a runner is doing.
type State string

// States of a runner.
const (
	StateStopped    State = "stopped"
	StateStandby    State = "standby" // waiting for its lease
	StateCatchingUp State = "catching up"
	StateRebuilding State = "rebuilding"
	StateLive       State = "live"
	StateFailed     State = "failed"
	// StateRestarting: the runner failed and starts again soon
	// ([WithRestart]); Status.Err says why.
	StateRestarting State = "restarting"
	// StateElsewhere: the runner does not run in this process, and
	// another process holds its lease ([LeaseHolders]); Status.Holder
	// names it.
	StateElsewhere State = "running elsewhere"
)

// Status is a snapshot of a runner.
type Status struct {
	Name    string
	Version int
	State   State
	// Checkpoint is the position of the last event or checkpoint committed.
	Checkpoint es.Position
	// LastEvent is when the last event applied was created; for a runner
	// that is not running, when the event at its checkpoint was (zero if
	// the checkpoint is not an event's position).
	LastEvent time.Time
	// Events counts the events applied since the runner was created.
	Events int64
	// Pending counts the events received for the batch under way, not
	// yet committed.
	Pending int
	// Err is why the runner failed, in StateFailed, or why it restarts,
	// in StateRestarting.
	Err error
	// Restarts counts the restarts after failures ([WithRestart]) since
	// the runner was created.
	Restarts int
	// Holder names the holder of the projection's lease when another one
	// holds it: in [StateStandby], the one this runner waits for; in
	// [StateElsewhere], the one that runs it. Only checkpoint stores that
	// implement [LeaseHolders] tell.
	Holder string
	// Partitions is the number of partitions of a partitioned projection
	// ([Projection.Partitions]); 0 for one that is not partitioned.
	Partitions int
	// Partition is the partition that the status is of, from 0, when
	// Parts is empty.
	Partition int
	// Parts are the statuses of the partitions, on the status of a
	// partitioned projection as a whole ([Partitioned.Status]); its
	// Checkpoint is then the lowest of theirs, below which every
	// partition is done.
	Parts []Status
}

// Status returns the runner's status. A runner that is not running reports
// the checkpoint stored for it.
func (r *Runner[Tx]) Status(ctx context.Context) (Status, error) {
	r.mu.Lock()
	st, running := r.status, r.running
	r.mu.Unlock()
	if running {
		return st, nil
	}
	version, err := r.versionToRun(ctx)
	if err != nil {
		return st, err
	}
	cp, err := r.cps.Load(ctx, r.key(version))
	if err != nil {
		return st, err
	}
	st.Version, st.Checkpoint = version, cp.Position
	if cp.Rebuilding && st.State == StateStopped {
		st.State = StateRebuilding
	}
	if lh, ok := r.cps.(LeaseHolders); ok && (st.State == StateStopped || st.State == StateRebuilding) {
		holder, err := lh.LeaseHolder(ctx, r.key(version))
		if err != nil {
			return st, err
		}
		if holder != "" {
			st.State, st.Holder = StateElsewhere, holder
		}
	}
	if st.LastEvent.IsZero() && !cp.Position.IsZero() {
		// The event at the checkpoint tells when the last one applied was
		// created (a checkpoint of the log's own may fall between events).
		for ev, err := range r.store.ReadAll(ctx, es.ReadAllOptions{From: cp.Position, Limit: 1}) {
			if err == nil && ev.Position == cp.Position {
				st.LastEvent = ev.Created
			}
		}
	}
	return st, nil
}

func (r *Runner[Tx]) begin() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return false
	}
	// Until it has its lease and its checkpoint, a running runner
	// waits: it is not stopped any more, nor live yet.
	r.running, r.status.State = true, StateStandby
	return true
}

func (r *Runner[Tx]) end(ctx context.Context, err error) {
	if stoppedByCtx(ctx, err) {
		err = nil // stopped, not failed
	}
	r.mu.Lock()
	r.running = false
	r.status.State, r.status.Err = StateStopped, err
	if err != nil {
		r.status.State = StateFailed
	}
	r.mu.Unlock()
	r.notify()
}

// restarting records that the runner failed with err and will start
// again.
func (r *Runner[Tx]) restarting(err error) {
	r.mu.Lock()
	r.status.State, r.status.Err, r.status.Pending = StateRestarting, err, 0
	r.status.Restarts++
	r.mu.Unlock()
	r.notify()
}

func (r *Runner[Tx]) setState(s State) {
	r.mu.Lock()
	r.status.State = s
	r.mu.Unlock()
	r.notify()
}

// notify wakes every WaitFor.
func (r *Runner[Tx]) notify() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// ErrStopped means WaitFor gave up because the runner failed.
var ErrStopped = errors.New("projection: runner stopped")

// WaitFor returns once the running projection has committed position p (the
// position of an append, from aggregate.Result.Position), so that a query
// after it sees the caller's own writes. It returns ctx's error when ctx is
// done first, and an error matching [ErrStopped] and the runner's failure
// when the runner failed. A runner that is not running (yet, or any more),
// or restarting after a failure ([WithRestart]), is waited for: give ctx a
// deadline.
//
// p may be the position of an event the projection does not consume: once
// the runner is live and idle, and no event it consumes lies between its
// checkpoint and p (checked by reading the log, at most 1000 events), the
// read model is as it will be at p, and WaitFor returns.
//
// When the store records versions ([Versions]) and another process has
// switched the active version (a blue/green rebuild), WaitFor makes the
// runner follow the switch at once, and waits for the active version: the
// queries read that one.
func (r *Runner[Tx]) WaitFor(ctx context.Context, p es.Position) error {
	active := 0
	if v, ok := r.cps.(Versions[Tx]); ok {
		// A store that fails to answer (a connection just lost) only
		// costs the check: the version switches are rare, and the runner
		// notices them by itself within seconds.
		active, _ = v.ActiveVersion(ctx, r.p.Name)
	}
	for {
		r.mu.Lock()
		cp, failure, changed := r.status.Checkpoint, r.status.Err, r.changed
		idle := r.status.State == StateLive && r.status.Pending == 0
		failed := r.status.State == StateFailed
		behind := r.running && r.status.Version < active
		r.mu.Unlock()
		switch {
		case behind:
			select {
			case r.recheck <- struct{}{}: // follow the switch now
			default:
			}
			idle = false
		case cp.Compare(p) >= 0:
			return nil
		case failed && failure != nil: // a restarting runner is waited for
			return fmt.Errorf("%w: %w", ErrStopped, failure)
		}
		// Only an idle runner is worth the read: a busy one moves its
		// checkpoint on soon anyway.
		if idle {
			if done, err := r.nothingToApply(ctx, cp, p); err != nil {
				return err
			} else if done {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// waitScan bounds the events WaitFor reads to learn that none between the
// checkpoint and the position it waits for is the projection's.
const waitScan = 1000

// nothingToApply reports whether the log holds no event the projection
// consumes after cp up to p, and reaches p.
func (r *Runner[Tx]) nothingToApply(ctx context.Context, cp, p es.Position) (bool, error) {
	_, keep := r.filter()
	for ev, err := range r.store.ReadAll(ctx, es.ReadAllOptions{From: cp, Limit: waitScan}) {
		if err != nil {
			return false, err
		}
		if ev.Position.Compare(cp) <= 0 {
			continue
		}
		if ev.Position.Compare(p) > 0 {
			return true, nil // past p, and nothing to apply on the way
		}
		if keep(ev) {
			return false, nil
		}
		if ev.Position == p {
			return true, nil
		}
	}
	return false, nil // p is not in the log yet, or is too far
}

// Lag is how far a projection is behind the log.
type Lag struct {
	// Head is the position of the last event of the log.
	Head es.Position
	// Events is the number of events after the checkpoint that the
	// projection consumes, counted up to a limit.
	Events int
	// AtLeast is set when counting stopped at the limit.
	AtLeast bool
	// Time is how much older the last applied event is than the head
	// event (when none was applied yet, the oldest event still to apply);
	// 0 when caught up.
	Time time.Duration
}

// MaxLagCount is the most events Lag counts.
const MaxLagCount = 100_000

// Lag measures how far the projection is behind the log. A checkpoint
// beyond the head of the log (checkpoints of another event store, or a
// store that lost events) is an error matching [ErrCheckpointBeyondHead],
// with the Lag's Head set.
func (r *Runner[Tx]) Lag(ctx context.Context) (Lag, error) {
	st, err := r.Status(ctx)
	if err != nil {
		return Lag{}, err
	}
	head, err := headOf(ctx, r.store)
	if err != nil {
		return Lag{}, err
	}
	lag := Lag{Head: head.Position}
	switch c := st.Checkpoint.Compare(head.Position); {
	case c > 0:
		return lag, fmt.Errorf("%w: %s is at %v, the log ends at %v", ErrCheckpointBeyondHead,
			r.key(st.Version), st.Checkpoint, head.Position)
	case c == 0:
		return lag, nil
	}
	_, keep := r.filter()
	behind := func(ev es.RecordedEvent) bool { return ev.Position.Compare(st.Checkpoint) > 0 && keep(ev) }
	return countLag(ctx, r.store, lag, st.Checkpoint, st.LastEvent, head, behind)
}

// countLag completes lag: it counts the events after from that behind
// says are still to apply (up to MaxLagCount), and measures how much older
// than head is applied, the creation of the last event applied (or, if
// zero, that of the oldest still to apply).
func countLag(ctx context.Context, store es.Store, lag Lag, from es.Position, applied time.Time, head es.RecordedEvent,
	behind func(es.RecordedEvent) bool) (Lag, error) {
	var oldest time.Time
	for ev, err := range store.ReadAll(ctx, es.ReadAllOptions{From: from}) {
		if err != nil {
			return Lag{}, err
		}
		if !behind(ev) {
			continue
		}
		if oldest.IsZero() {
			oldest = ev.Created
		}
		if lag.Events == MaxLagCount {
			lag.AtLeast = true
			break
		}
		lag.Events++
	}
	if lag.Events > 0 {
		if applied.IsZero() {
			applied = oldest
		}
		lag.Time = max(head.Created.Sub(applied), 0)
	}
	return lag, nil
}

// headOf returns the last event of the log, or a zero event at es.Start.
func headOf(ctx context.Context, store es.Store) (es.RecordedEvent, error) {
	ev, _, err := es.Head(ctx, store)
	if err != nil {
		return es.RecordedEvent{}, fmt.Errorf("read the head of the log: %w", err)
	}
	return ev, nil
}

// Progress reports a catch-up or rebuild under way.
type Progress struct {
	Projection string
	// Version is the version being built.
	Version int
	// Events is the number of events applied so far.
	Events int64
	// Position is the checkpoint reached; Start where the catch-up
	// started, Head the end of the log then.
	Position, Start, Head es.Position
	// Rate is in events per second.
	Rate float64
	// Remaining estimates the time left, from the share of the log
	// between the start and Head that is done.
	Remaining time.Duration
	// Done is set on the last report, when the projection caught up.
	Done bool
	// Stopped is set on the last report of a catch-up interrupted before
	// it caught up (its context ended); Position is then what was
	// committed.
	Stopped bool
}

type progress struct {
	name        string
	version     int
	start, head es.Position
	began, last time.Time
	events      int64
	report      func(Progress)
	gap         time.Duration
	done        bool
}

func newProgress(name string, version int, start es.Position, head es.RecordedEvent, report func(Progress), gap time.Duration) *progress {
	return &progress{name: name, version: version, start: start, head: head.Position, began: time.Now(), report: report, gap: gap}
}

// stopped sends the last report of an interrupted catch-up.
func (p *progress) stopped(pos es.Position) {
	if p.report == nil || p.done {
		return
	}
	rep := p.build(time.Now(), pos)
	rep.Stopped = true
	p.report(rep)
}

func (p *progress) update(pos es.Position, events int, done bool) {
	p.events += int64(events)
	if p.report == nil {
		return
	}
	now := time.Now()
	if !done && now.Sub(p.last) < p.gap {
		return
	}
	p.last, p.done = now, done
	rep := p.build(now, pos)
	rep.Done = done
	p.report(rep)
}

func (p *progress) build(now time.Time, pos es.Position) Progress {
	elapsed := now.Sub(p.began)
	rep := Progress{Projection: p.name, Version: p.version, Events: p.events, Position: pos, Start: p.start, Head: p.head}
	if elapsed > 0 {
		rep.Rate = float64(p.events) / elapsed.Seconds()
	}
	if span := float64(p.head.Commit) - float64(p.start.Commit); span > 0 {
		frac := (float64(pos.Commit) - float64(p.start.Commit)) / span
		if frac > 0 && frac < 1 {
			rep.Remaining = time.Duration(float64(elapsed) * (1 - frac) / frac)
		}
	}
	return rep
}
