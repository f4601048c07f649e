package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/internal/backoff"
)

// Errors of the runner, matched with [errors.Is].
var (
	// ErrCorruptCheckpoint means a stored checkpoint could not be read.
	// Recovery: rebuild the projection (its checkpoint is rewritten).
	ErrCorruptCheckpoint = errors.New("projection: corrupt checkpoint")
	// ErrCheckpointBeyondHead means a checkpoint is past the end of the
	// log: the checkpoints belong to another event store, or the store lost
	// events. Recovery: rebuild the projection.
	ErrCheckpointBeyondHead = errors.New("projection: checkpoint beyond the head of the log")
	// ErrPoisonEvent means an event could not be applied after every
	// retry, or could not be decoded. The error is a [*PoisonError].
	ErrPoisonEvent = errors.New("projection: poison event")
	// ErrFenced means a checkpoint moved under the runner: another runner
	// of the same projection committed since this one last read it (a
	// lease lost, two processes on one SQLite file). Checkpoints that can
	// tell return an error matching it from Commit; the runner then stops
	// at once, without retrying or blaming an event.
	ErrFenced = errors.New("projection: checkpoint moved by another runner")
	// ErrUnavailable, wrapped by a handler's error, says that a batch
	// failed for want of something outside it (a broker or a service that
	// is away), not because of one of its events; [es.ErrUnavailable] (a
	// store away) says the same. The runner retries the
	// batch as usual ([WithRetry]), then fails with the error instead of
	// looking for a poison event; with [WithRestart] it starts again after
	// its backoff. The runner decides the same by itself when the
	// checkpoint store cannot commit even an empty batch.
	ErrUnavailable = errors.New("projection: unavailable")
)

// PoisonError reports an event a projection could not apply. It matches
// [ErrPoisonEvent] and unwraps to the cause.
type PoisonError struct {
	Projection string
	Event      es.RecordedEvent
	Err        error
}

// Error names the projection, the event and the cause.
func (e *PoisonError) Error() string {
	return fmt.Sprintf("projection %s: poison event %d of stream %q (type %q, position %v): %v",
		e.Projection, e.Event.Revision, e.Event.Stream, e.Event.Type, e.Event.Position, e.Err)
}

// Is makes the error match [ErrPoisonEvent].
func (e *PoisonError) Is(target error) bool { return target == ErrPoisonEvent }

// Unwrap returns the cause.
func (e *PoisonError) Unwrap() error { return e.Err }

// Runner runs one projection: it subscribes to `$all` from the projection's
// checkpoint, decodes the events, applies them in batches, each in one
// transaction with the new checkpoint, and goes on live once it has caught
// up. Create it with [NewRunner]; run it with [Runner.Run]. Several runners
// run side by side in one process, each in its own goroutine.
//
// The subscription reads and decodes ahead of the runner (up to one batch,
// at least 64 and at most 4096 events) while the runner commits, so that
// decoding overlaps committing. While it catches up or rebuilds, a runner
// fills each batch to its size (see [WithBatch]). Live, it commits as soon
// as the subscription has nothing more ready: an event arriving on an idle
// runner is committed at once, alone, and the events that arrive while a
// batch commits make up the next one. Batches grow with the load, not with
// a timer that every event waits for.
type Runner[Tx any] struct {
	store es.Store
	cps   Checkpoints[Tx]
	types *es.Registry
	p     Projection[Tx]
	cfg   config
	tel   *telemetry
	// part is the partition the runner runs, of a partitioned projection
	// (see Partitioned); its group sets the projection up and switches
	// its versions.
	part *part

	lives atomic.Int64 // how many times the runner went live

	mu      sync.Mutex
	status  Status
	running bool
	changed chan struct{} // closed and replaced when status changes
	recheck chan struct{} // asks a running runner to check the active version now
}

// part is what a partition's runner knows of its group.
type part struct {
	index int
	// built is called when the partition has caught up with a version
	// for the first time: the group activates the version once every
	// partition has.
	built func(ctx context.Context, version int) error
	// resetting reports whether a rebuild in place of the version is
	// setting the partitions back to the start (see
	// Partitioned.resetting).
	resetting func(ctx context.Context, version int) (bool, error)
	// feed subscribes to the feed of the group's Run, if it runs (see
	// feed.subscribe).
	feed func(ctx context.Context, from es.Position) (<-chan item, func(), bool)
}

// key returns the name of the checkpoint of version.
func (r *Runner[Tx]) key(version int) string {
	if r.part != nil {
		return partitionKey(r.p.Name, version, r.part.index)
	}
	return key(r.p.Name, version)
}

// partitions returns the number of partitions that the runner's
// checkpoints record: 0 when not partitioned.
func (r *Runner[Tx]) partitions() int {
	if r.part != nil {
		return r.p.Partitions
	}
	return 0
}

// versionWatch is how often a running runner checks the active version.
const versionWatch = 2 * time.Second

type config struct {
	batchSize   int
	batchWait   time.Duration
	attempts    int
	backoff     time.Duration
	deadLetters DeadLetters
	logger      *slog.Logger
	stopTimeout time.Duration
	progress    func(Progress)
	progressGap time.Duration
	restart     time.Duration // the first wait before a restart; 0: none
	restartMax  time.Duration
	tracers     trace.TracerProvider
	meters      metric.MeterProvider
	rebalance   time.Duration // partitioned: how often replicas look at each other
	workers     int           // partitioned: workers of a catch-up or rebuild; 0: one per core
}

// Option configures a Runner.
type Option func(*config) error

// WithBatch sets the most events applied in one transaction (500 by
// default), and how long an event received during a catch-up or a rebuild
// waits at most for its batch to fill (100ms by default) when the history
// arrives slowly. Large batches make catch-ups and rebuilds fast.
//
// A live runner does not wait: it commits as soon as its subscription has
// nothing more ready, so an event on an idle runner is applied at once;
// under load, the events that arrive while a batch commits form the next
// batch, up to size. Only the log's own checkpoints, which move no read
// model, wait up to wait when live, to be committed with the next event or
// together.
func WithBatch(size int, wait time.Duration) Option {
	return func(c *config) error {
		if size < 1 || wait <= 0 {
			return fmt.Errorf("%w: batch of %d events, wait %v", ErrInvalidProjection, size, wait)
		}
		c.batchSize, c.batchWait = size, wait
		return nil
	}
}

// WithRetry sets how many times a failing batch is tried in all, the first
// try included as everywhere in eventfold (5 by default; 1 means no
// retry), and the wait before the first retry (100ms by default, doubled
// before each next one up to 100 times the first, of which the last half
// is random).
func WithRetry(attempts int, backoff time.Duration) Option {
	return func(c *config) error {
		if attempts < 1 || backoff < 0 {
			return fmt.Errorf("%w: retry %d attempts, backoff %v", ErrInvalidProjection, attempts, backoff)
		}
		c.attempts, c.backoff = attempts, backoff
		return nil
	}
}

// WithRestart makes Run start the runner again after a failure, instead of
// returning it: a subscription that failed for good (a server away for
// longer than the store retries), a transient error of the checkpoint
// store outside a batch, a lease or a fenced commit ([ErrFenced]: the
// runner goes back to waiting for its lease). It waits first before the
// first restart, then twice as long each time (with jitter), up to max,
// and starts counting again once the runner went live. Meanwhile its
// [Status] says [StateRestarting] with the error. A poison event (unless
// skipped), a corrupt checkpoint, a checkpoint beyond the head of the log
// and an invalid projection still end Run with their error: they need a
// person. By default Run returns every failure.
func WithRestart(first, max time.Duration) Option {
	return func(c *config) error {
		if first <= 0 || max < first {
			return fmt.Errorf("%w: restart after %v, at most %v", ErrInvalidProjection, first, max)
		}
		c.restart, c.restartMax = first, max
		return nil
	}
}

// WithSkipPoison makes the runner skip an event it cannot apply, after
// recording it in dead. The default is to stop with a [*PoisonError].
func WithSkipPoison(dead DeadLetters) Option {
	return func(c *config) error {
		if dead == nil {
			return fmt.Errorf("%w: nil dead-letter store", ErrInvalidProjection)
		}
		c.deadLetters = dead
		return nil
	}
}

// WithLogger sets the logger for retries and skipped events; slog.Default()
// by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidProjection)
		}
		c.logger = l
		return nil
	}
}

// WithStopTimeout bounds how long a stopping runner may take to commit its
// last batch (5s by default).
func WithStopTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: stop timeout %v", ErrInvalidProjection, d)
		}
		c.stopTimeout = d
		return nil
	}
}

// WithProgress calls report with the progress of every catch-up, at most
// every interval and once at the end. Rebuilds report to the function they
// are given, if any, instead.
func WithProgress(interval time.Duration, report func(Progress)) Option {
	return func(c *config) error {
		if report == nil || interval <= 0 {
			return fmt.Errorf("%w: progress every %v", ErrInvalidProjection, interval)
		}
		c.progress, c.progressGap = report, interval
		return nil
	}
}

// NewRunner returns a runner of projection p over the events of store,
// decoded by types, with checkpoints (and the read model's transactions)
// in cps. types may be nil: the events are then handed over as stored,
// with a nil Payload (what a relay that publishes them wants). NewRunner
// validates p and the options; nothing runs until Run.
func NewRunner[Tx any](store es.Store, cps Checkpoints[Tx], types *es.Registry, p Projection[Tx], opts ...Option) (*Runner[Tx], error) {
	if p.partitioned() {
		return nil, fmt.Errorf("%w: %s has %d partitions: run it with NewPartitioned", ErrInvalidProjection, p.Name, p.Partitions)
	}
	return newRunner(store, cps, types, p, -1, opts...)
}

// newRunner returns a runner of p, or of its partition when partition is
// not negative.
func newRunner[Tx any](store es.Store, cps Checkpoints[Tx], types *es.Registry, p Projection[Tx], partition int, opts ...Option) (*Runner[Tx], error) {
	cfg := config{batchSize: 500, batchWait: 100 * time.Millisecond, attempts: 5, backoff: 100 * time.Millisecond,
		stopTimeout: 5 * time.Second, progressGap: time.Second, rebalance: time.Second}
	errs := []error{p.Validate()}
	if store == nil || cps == nil {
		errs = append(errs, fmt.Errorf("%w: %s: nil store or checkpoints", ErrInvalidProjection, p.Name))
	}
	for _, opt := range opts {
		errs = append(errs, opt(&cfg))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	tel, err := newTelemetry(p.Name, partition, cfg)
	if err != nil {
		return nil, err
	}
	r := &Runner[Tx]{store: store, cps: cps, types: types, p: p, cfg: cfg, tel: tel,
		status:  Status{Name: p.Name, Version: p.version(), State: StateStopped},
		changed: make(chan struct{}), recheck: make(chan struct{}, 1)}
	if partition >= 0 {
		r.part = &part{index: partition}
		r.status.Partition, r.status.Partitions = partition, p.Partitions
	}
	return r, nil
}

// Name returns the projection's name.
func (r *Runner[Tx]) Name() string { return r.p.Name }

// Run runs the projection until ctx is done, then commits the batch under
// way (whole or not at all) and returns nil. It returns an error when the
// projection cannot go on: a poison event (unless skipped), a checkpoint
// that cannot be read or is beyond the head of the log, a subscription
// that failed for good. Run may be called again after it returns.
//
// If the checkpoint store grants leases ([Leaser]), Run first waits for the
// projection's lease, so that of several replicas only one runs it; if the
// lease is lost while it runs, the runner stops committing and fails with
// [ErrLeaseLost] (with [WithRestart], it waits for the lease again).
// If it records versions ([Versions]), Run builds the version of the code
// or the active version, whichever is higher, and switches queries to it
// once it has caught up: deploying a projection with a higher Version
// rebuilds it blue/green. A running runner notices within a few seconds
// when another process switched the active version, and follows.
func (r *Runner[Tx]) Run(ctx context.Context) error {
	return r.run(ctx, plan{mode: modeRun})
}

// CatchUp runs the projection until it has caught up with the log,
// commits, and returns nil; if ctx ends first, it commits the batch under
// way and returns ctx's error.
func (r *Runner[Tx]) CatchUp(ctx context.Context) error {
	return r.run(ctx, plan{mode: modeCatchUp})
}

type mode uint8

const (
	modeRun mode = iota
	modeCatchUp
)

// plan says what a run does.
type plan struct {
	mode    mode
	version int  // the version to build; 0 for versionToRun
	reset   bool // start a rebuild in place, unless one is under way
	report  func(Progress)
}

// errVersionChanged ends a follow when another process switched versions.
var errVersionChanged = errors.New("projection: the active version changed")

func (r *Runner[Tx]) run(ctx context.Context, pl plan) (err error) {
	if !r.begin() {
		return fmt.Errorf("projection %s: already running", r.p.Name)
	}
	defer func() { r.end(ctx, err) }()
	defer r.tel.observe(r.Status, r.Lag)()
	failures := 0
	for {
		lives := r.lives.Load()
		err := r.runVersion(ctx, pl)
		if errors.Is(err, errVersionChanged) {
			continue
		}
		if pl.mode == modeRun && stoppedByCtx(ctx, err) {
			return nil
		}
		if pl.mode != modeRun || r.cfg.restart <= 0 || !restartable(err) {
			return err
		}
		if r.lives.Load() != lives {
			failures = 0 // it went live since the last failure
		}
		failures++
		wait := backoff.Policy{First: r.cfg.restart, Max: r.cfg.restartMax, Jitter: 0.5}.Wait(failures)
		r.cfg.logger.WarnContext(ctx, "projection: runner failed; restarting", "projection", r.p.Name,
			"error", err, "failures", failures, "retry", wait)
		r.restarting(err)
		if backoff.Sleep(ctx, wait) != nil {
			return nil // stopped while waiting to restart
		}
	}
}

// restartable reports whether a runner with WithRestart starts again
// after err: not after a poison event, a checkpoint that cannot be used,
// or an invalid projection, which need a person.
func restartable(err error) bool {
	return !errors.Is(err, ErrPoisonEvent) && !errors.Is(err, ErrCorruptCheckpoint) &&
		!errors.Is(err, ErrCheckpointBeyondHead) && !errors.Is(err, ErrInvalidProjection)
}

func (r *Runner[Tx]) runVersion(ctx context.Context, pl plan) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	version := pl.version
	if version == 0 {
		var err error
		if version, err = r.versionToRun(ctx); err != nil {
			return err
		}
	}
	r.mu.Lock()
	if r.status.Version != version {
		// Another version's checkpoint says nothing of this one's.
		r.status.Checkpoint = es.Position{}
	}
	r.status.Version = version
	r.mu.Unlock()
	k := r.key(version)

	held, release, err := r.lease(ctx, k)
	if err != nil {
		return err
	}
	defer release()
	err = r.runLeased(held, pl, version)
	if ctx.Err() == nil && held.Err() != nil {
		// The lease ended under the runner, which stopped committing.
		cause := context.Cause(held)
		if err == nil || errors.Is(err, held.Err()) {
			return fmt.Errorf("projection %s: %w", k, cause)
		}
		return fmt.Errorf("projection %s: %w (%w)", k, cause, err)
	}
	return err
}

// runLeased runs one version of the projection under its lease, which
// ctx's end reports lost.
func (r *Runner[Tx]) runLeased(ctx context.Context, pl plan, version int) error {
	k := r.key(version)
	cp, err := r.cps.Load(ctx, k)
	if err != nil {
		return err
	}
	if err := r.checkLayout(k, cp); err != nil {
		return err
	}
	if r.part != nil {
		// The group set the version up; a partition of a version that
		// queries do not read yet is built, and reports when it is.
		if cp, err = r.building(ctx, version, cp); err != nil {
			return err
		}
		if cp, err = r.setBack(ctx, version, cp); err != nil {
			return err
		}
	} else {
		if r.p.Setup != nil {
			if err := r.cps.Commit(ctx, k, cp, func(tx Tx) error { return r.p.Setup(ctx, tx, version) }); err != nil {
				return fmt.Errorf("projection %s: setup of version %d: %w", r.p.Name, version, err)
			}
		}
		if pl.version == 0 { // not a blue/green build of a version of its own
			if err := r.activateFirst(ctx, version); err != nil {
				return err
			}
		}
	}
	reset := pl.reset && !cp.Rebuilding
	if reset {
		if r.p.Reset == nil {
			return fmt.Errorf("%w: %s has no Reset: it cannot be rebuilt in place", ErrInvalidProjection, r.p.Name)
		}
		// The read model is reset in the transaction of the first
		// commit, with the first events: a rebuild that fails before it
		// (a log that cannot be read) leaves the read model as it was.
		cp = Checkpoint{Rebuilding: true, Partitions: r.partitions()}
	}
	state := StateCatchingUp
	if cp.Rebuilding {
		state = StateRebuilding
	}
	return r.follow(ctx, pl, version, cp, state, reset)
}

// ErrPartitionsChanged means a checkpoint was written by the projection
// with another number of partitions (or none): changing the number of
// partitions of a projection needs a new [Projection.Version], built
// beside the old one.
var ErrPartitionsChanged = errors.New("projection: the number of partitions changed")

// checkLayout checks that the checkpoint cp, stored under k, was written
// with the runner's number of partitions.
func (r *Runner[Tx]) checkLayout(k string, cp Checkpoint) error {
	if cp == (Checkpoint{}) || cp.Partitions == r.partitions() {
		return nil
	}
	return layoutError(k, cp.Partitions, r.partitions())
}

func layoutError(k string, stored, want int) error {
	return fmt.Errorf("%w: %s was built with %d partitions, the projection has %d: give it a new Version to rebuild it blue/green",
		ErrPartitionsChanged, k, stored, want)
}

// building marks the first checkpoint of a partition of a version that
// queries do not read yet as a build under way, so that the partition
// reports when it has caught up (see part.built).
func (r *Runner[Tx]) building(ctx context.Context, version int, cp Checkpoint) (Checkpoint, error) {
	v, ok := r.cps.(Versions[Tx])
	if !ok || cp != (Checkpoint{}) {
		return cp, nil
	}
	active, err := v.ActiveVersion(ctx, r.p.Name)
	if err != nil || active == version {
		return cp, err
	}
	cp = Checkpoint{Rebuilding: true, Partitions: r.partitions()}
	if err := r.cps.Commit(ctx, r.key(version), cp, nil); err != nil {
		return cp, fmt.Errorf("projection %s: %w", r.key(version), err)
	}
	return cp, nil
}

// setBack sets the partition back to the start when a rebuild in place
// of its version reset the read model and it has not started its rebuild
// yet (the rebuild was interrupted before it set every partition back).
func (r *Runner[Tx]) setBack(ctx context.Context, version int, cp Checkpoint) (Checkpoint, error) {
	if r.part.resetting == nil || cp.Rebuilding {
		return cp, nil
	}
	resetting, err := r.part.resetting(ctx, version)
	if err != nil || !resetting {
		return cp, err
	}
	cp = Checkpoint{Rebuilding: true, Partitions: r.partitions()}
	if err := r.cps.Commit(ctx, r.key(version), cp, nil); err != nil {
		return cp, fmt.Errorf("projection %s: %w", r.key(version), err)
	}
	_, err = r.part.resetting(ctx, version) // ends it if this was the last partition
	return cp, err
}

// stoppedByCtx reports whether err only says that ctx ended: a graceful
// stop, not a failure.
func stoppedByCtx(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err())
}

// lease waits for the lease of k, the key of one version of the
// projection: two runners never build the same version at once, while a
// blue/green rebuild builds the next version beside the one serving.
func (r *Runner[Tx]) lease(ctx context.Context, k string) (context.Context, func(), error) {
	l, ok := r.cps.(Leaser)
	if !ok {
		return ctx, func() {}, nil
	}
	holder := ""
	if lh, ok := l.(LeaseHolders); ok {
		// Only for Status: whom the standby waits for, if anybody.
		hctx, cancel := context.WithTimeout(ctx, holderTimeout)
		holder, _ = lh.LeaseHolder(hctx, k)
		cancel()
	}
	r.mu.Lock()
	r.status.State, r.status.Holder = StateStandby, holder
	r.mu.Unlock()
	r.notify()
	held, release, err := l.Lease(ctx, k)
	r.mu.Lock()
	r.status.Holder = ""
	r.mu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("projection %s: lease: %w", k, err)
	}
	return held, release, nil
}

// holderTimeout bounds the look-up of a lease's holder, for Status.
const holderTimeout = 5 * time.Second

// versionToRun returns the version to build: the code's, or the active one
// when a blue/green rebuild made it higher.
func (r *Runner[Tx]) versionToRun(ctx context.Context) (int, error) {
	version := r.p.version()
	if v, ok := r.cps.(Versions[Tx]); ok {
		active, err := v.ActiveVersion(ctx, r.p.Name)
		if err != nil {
			return 0, fmt.Errorf("projection %s: active version: %w", r.p.Name, err)
		}
		version = max(version, active)
	}
	return version, nil
}

// item is what the subscription goroutine hands to the runner: a message,
// already decoded if the projection consumes it, or the subscription's
// failure.
type item struct {
	msg     es.Message
	err     error // the subscription failed
	keep    bool  // an event the projection consumes
	payload any   // the decoded payload of an event kept
	bad     error // why an event kept does not decode
	// undecoded: an event kept that its receiver decodes (the feed of a
	// Partitioned leaves decoding to each partition, in parallel).
	undecoded bool
}

// The subscription reads up to one batch ahead of the runner, at least
// minReadAhead items (so that small batches still overlap decoding and
// committing) and at most maxReadAhead (the channel's buffer is allocated
// whole).
const (
	minReadAhead = 64
	maxReadAhead = 4096
)

// follow applies the log from cp until ctx is done, or until caught up in
// modeCatchUp.
//
// A goroutine reads the subscription and decodes the events ahead of the
// runner, into a buffered channel. While catching up, the runner fills
// batches to the batch size (the channel may be empty for a moment while
// the store fetches its next page: that is no reason to commit), and
// commits a batch that waited the batch wait, or at caught-up. Live, it
// takes what is ready and commits the events as soon as the channel is
// empty: an idle runner commits each event at once, a busy one in batches
// of what arrived during the previous commit (group commit). The log's
// checkpoints alone (a filtered subscription passing other streams' events)
// move no read model and nobody waits for them: they are committed with
// the next event, or after the batch wait.
func (r *Runner[Tx]) follow(ctx context.Context, pl plan, version int, cp Checkpoint, state State, reset bool) error {
	head, err := r.start(ctx, version, cp, state)
	if err != nil {
		return err
	}
	items, stop := r.subscribe(ctx, cp.Position)
	defer stop()

	report, gap := r.cfg.progress, r.cfg.progressGap
	if pl.report != nil {
		report = pl.report
	}
	f := &follower[Tx]{r: r, mode: pl.mode, version: version, cp: cp, reset: reset, progress: newProgress(r.p.Name, version, cp.Position, head, report, gap)}
	wait := newBatchTimer(r.cfg.batchWait) // bounds the wait of a batch under way
	defer wait.stop()
	var watch <-chan time.Time // checks for a switch of the active version
	var recheck <-chan struct{}
	if _, ok := r.cps.(Versions[Tx]); ok && pl.mode == modeRun {
		t := time.NewTicker(versionWatch)
		defer t.Stop()
		watch, recheck = t.C, r.recheck
	}
	for {
		var err error
		select {
		case <-watch:
			err = f.switched(ctx)
		case <-recheck:
			err = f.switched(ctx)
		case it := <-items:
			var end bool
			if end, err = f.takeReady(ctx, it, items); end {
				return err
			}
			// A batch under way catching up, or the log's checkpoints
			// alone when live, wait at most the batch wait.
			wait.arm(f.dirty)
		case <-wait.c():
			wait.fired()
			err = f.flush(ctx)
		case <-ctx.Done():
			return f.stop(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// start checks that the checkpoint cp is within the log, and reports the
// runner in state from it. It returns the head of the log.
func (r *Runner[Tx]) start(ctx context.Context, version int, cp Checkpoint, state State) (es.RecordedEvent, error) {
	head, err := headOf(ctx, r.store)
	if err != nil {
		return head, fmt.Errorf("projection %s: %w", r.p.Name, err)
	}
	if cp.Position.Compare(head.Position) > 0 {
		return head, fmt.Errorf("%w: %s is at %v, the log ends at %v", ErrCheckpointBeyondHead, r.key(version), cp.Position, head.Position)
	}
	r.mu.Lock()
	r.status.State, r.status.Checkpoint, r.status.Err = state, cp.Position, nil
	r.mu.Unlock()
	r.notify()
	return head, nil
}

// subscribe returns the messages of the log after from, for follow: from
// the feed that the partitions of a running Partitioned share, or from a
// subscription of the runner's own (readAhead).
func (r *Runner[Tx]) subscribe(ctx context.Context, from es.Position) (<-chan item, func()) {
	if r.part != nil && r.part.feed != nil {
		if items, stop, ok := r.part.feed(ctx, from); ok {
			return items, stop
		}
	}
	return r.readAhead(ctx, from)
}

// readAhead reads the subscription from the position from in a goroutine
// of its own, and decodes the events the projection consumes, ahead of
// the runner, into the channel it returns; stop ends the goroutine and
// waits for it. The channel's last item is the subscription's failure
// (a subscription only ends with one).
func (r *Runner[Tx]) readAhead(ctx context.Context, from es.Position) (<-chan item, func()) {
	filter, keep := r.filter()
	ctx, cancel := context.WithCancel(ctx)
	items := make(chan item, min(max(r.cfg.batchSize, minReadAhead), maxReadAhead))
	done := make(chan struct{})
	go func() {
		defer close(done)
		send := func(it item) bool {
			select {
			case items <- it:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for msg, err := range r.store.SubscribeAll(ctx, es.SubscribeAllOptions{From: from, Filter: filter}) {
			it := item{msg: msg, err: err}
			if err == nil && msg.Kind == es.KindEvent && keep(msg.Event) {
				it.keep = true
				it.payload, it.bad = r.decode(msg.Event)
			}
			if !send(it) || err != nil {
				return
			}
		}
		send(item{err: errors.New("the subscription ended")}) // it only ends with an error; say so if not
	}()
	return items, func() {
		cancel()
		<-done
	}
}

// takeReady takes it and, live, the items ready after it, committing a
// full batch, or, live, the events taken once nothing more is ready. It
// reports whether the follow ends, and with what.
func (f *follower[Tx]) takeReady(ctx context.Context, it item, items <-chan item) (end bool, err error) {
	for {
		if end, err := f.take(ctx, it); end {
			return true, err
		}
		if len(f.batch) >= f.r.cfg.batchSize {
			return false, f.flush(ctx) // then ctx and the version watch have their turn
		}
		if !f.live {
			return false, nil
		}
		select {
		case it = <-items:
		default: // nothing more ready: commit the events now
			if len(f.batch) > 0 {
				return false, f.flush(ctx)
			}
			return false, nil
		}
	}
}

// switched ends the follow, once its batch is committed, if another
// process switched the active version.
func (f *follower[Tx]) switched(ctx context.Context) error {
	if v, err := f.r.versionToRun(ctx); err == nil && v != f.version {
		if err := f.flush(ctx); err != nil {
			return err
		}
		return errVersionChanged
	}
	return nil
}

// batchTimer bounds how long a batch under way waits before it commits.
type batchTimer struct {
	t     *time.Timer
	wait  time.Duration
	armed bool
}

func newBatchTimer(wait time.Duration) *batchTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &batchTimer{t: t, wait: wait}
}

// arm starts the timer when a batch is under way and it is not running,
// and stops it when none is.
func (b *batchTimer) arm(pending bool) {
	switch {
	case !pending && b.armed:
		b.t.Stop()
		b.armed = false
	case pending && !b.armed:
		b.t.Reset(b.wait)
		b.armed = true
	}
}

func (b *batchTimer) c() <-chan time.Time { return b.t.C }
func (b *batchTimer) fired()              { b.armed = false }
func (b *batchTimer) stop()               { b.t.Stop() }

// take applies one item of the subscription to the batch under way. It
// reports whether the follow ends, and with what.
func (f *follower[Tx]) take(ctx context.Context, it item) (end bool, err error) {
	r := f.r
	if it.err != nil {
		if ctx.Err() != nil {
			return true, f.stop(ctx)
		}
		if err := f.stop(ctx); err != nil {
			return true, err
		}
		return true, fmt.Errorf("projection %s: subscription: %w", r.p.Name, it.err)
	}
	switch it.msg.Kind {
	case es.KindEvent:
		if it.keep && it.undecoded {
			it.payload, it.bad = r.decode(it.msg.Event)
		}
		switch {
		case !it.keep:
			f.advance(it.msg.Position)
		case it.bad != nil:
			if err := f.flush(ctx); err != nil {
				return true, err
			}
			if err := f.poison(ctx, it.msg.Event, it.bad); err != nil {
				return true, err
			}
		default:
			f.add(Event{RecordedEvent: it.msg.Event, Payload: it.payload})
		}
	case es.KindCheckpoint:
		f.advance(it.msg.Position)
	case es.KindCaughtUp:
		// A store that reports how far the subscription has read lets a
		// filtered runner move its checkpoint past the events it skipped.
		f.advance(it.msg.Position)
		if err := f.flush(ctx); err != nil {
			return true, err
		}
		if err := f.caughtUp(ctx); err != nil {
			return true, err
		}
		f.live = true
		return f.mode == modeCatchUp, nil
	}
	return false, nil
}

// decode decodes an event's payload, unless the runner has no registry.
func (r *Runner[Tx]) decode(ev es.RecordedEvent) (any, error) {
	if r.types == nil {
		return nil, nil
	}
	return r.types.Decode(ev)
}

// follower is the state of one follow: the batch under way and the
// checkpoint it will commit.
type follower[Tx any] struct {
	r        *Runner[Tx]
	mode     mode
	version  int
	cp       Checkpoint // committed
	reset    bool       // a rebuild in place resets the read model in the first commit
	pending  es.Position
	dirty    bool // pending is ahead of cp
	batch    []Event
	live     bool // caught up: commit as soon as nothing more is ready
	progress *progress
}

func (f *follower[Tx]) add(ev Event) {
	f.batch = append(f.batch, ev)
	f.advance(ev.Position)
	f.r.mu.Lock()
	f.r.status.Pending = len(f.batch)
	f.r.mu.Unlock()
}

func (f *follower[Tx]) advance(p es.Position) {
	if p.Compare(f.cp.Position) > 0 && p.Compare(f.pending) > 0 {
		f.pending, f.dirty = p, true
	}
}

// stop commits the batch under way with a context that outlives ctx, for
// at most the stop timeout, reports the progress made, and returns ctx's
// error (Run turns it into a graceful nil).
func (f *follower[Tx]) stop(ctx context.Context) error {
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.r.cfg.stopTimeout)
	defer cancel()
	if err := f.flush(flushCtx); err != nil {
		return err
	}
	f.progress.stopped(f.cp.Position)
	return ctx.Err()
}

// flush commits the batch and the pending checkpoint, retrying; when the
// batch keeps failing, it finds the event at fault and applies the poison
// policy to it.
func (f *follower[Tx]) flush(ctx context.Context) error {
	if !f.dirty {
		return nil
	}
	batch, pos := f.batch, f.pending
	err := f.commitRetrying(ctx, batch, pos)
	if err != nil && len(batch) > 0 && ctx.Err() == nil && !notTheEvents(err) {
		err = f.isolate(ctx, batch, pos)
	}
	if err != nil {
		return err
	}
	f.batch, f.dirty = f.batch[:0], false
	f.r.mu.Lock()
	f.r.status.Pending = 0
	f.r.mu.Unlock()
	return nil
}

// notTheEvents reports whether a failed batch failed for a reason that no
// event of it is to blame for.
func notTheEvents(err error) bool {
	var reset *resetError
	return errors.Is(err, ErrFenced) || errors.Is(err, ErrUnavailable) || errors.Is(err, es.ErrUnavailable) ||
		errors.As(err, &reset)
}

// isolate applies a failing batch one event at a time, so that the events
// before the culprit are committed and the culprit meets the poison policy.
// An event is only blamed if the checkpoint store commits without it: a
// store that is away fails the runner, to be restarted, and poisons
// nothing.
func (f *follower[Tx]) isolate(ctx context.Context, batch []Event, pos es.Position) error {
	for _, ev := range batch {
		if err := f.commitRetrying(ctx, []Event{ev}, ev.Position); err != nil {
			if ctx.Err() != nil || notTheEvents(err) {
				return err
			}
			if perr := f.commit(ctx, f.cp, nil); perr != nil {
				return fmt.Errorf("projection %s: %w: the checkpoint store fails too (%w) after the batch failed: %w",
					f.r.p.Name, ErrUnavailable, perr, err)
			}
			// The store commits: the event is tried once more, now that
			// the store is known to answer, so that a store that came
			// back during the retries does not make the event poison.
			if err = f.commitAttempts(ctx, []Event{ev}, ev.Position, 1); err == nil {
				continue
			}
			if ctx.Err() != nil || notTheEvents(err) {
				return err
			}
			if err := f.poison(ctx, ev.RecordedEvent, err); err != nil {
				return err
			}
		}
	}
	return f.commitRetrying(ctx, nil, pos)
}

// poison applies the poison policy to an event that cannot be applied.
func (f *follower[Tx]) poison(ctx context.Context, ev es.RecordedEvent, cause error) error {
	r := f.r
	if notTheEvents(cause) {
		return cause
	}
	perr := &PoisonError{Projection: r.p.Name, Event: ev, Err: cause}
	r.tel.poisoned(ctx)
	if r.cfg.deadLetters == nil {
		return perr
	}
	r.cfg.logger.WarnContext(ctx, "projection: skipping a poison event", "projection", r.p.Name,
		"stream", ev.Stream, "revision", ev.Revision, "position", ev.Position.String(), "error", cause)
	d := DeadLetter{Projection: r.p.Name, Event: ev, Error: cause.Error(), At: time.Now()}
	if err := r.cfg.deadLetters.SaveDeadLetter(ctx, d); err != nil {
		return fmt.Errorf("%w (and recording it failed: %v)", perr, err)
	}
	return f.commitRetrying(ctx, nil, ev.Position)
}

// commitRetrying commits events and the checkpoint pos, with retries.
func (f *follower[Tx]) commitRetrying(ctx context.Context, events []Event, pos es.Position) error {
	return f.commitAttempts(ctx, events, pos, f.r.cfg.attempts)
}

// commitAttempts commits events and the checkpoint pos, in at most
// attempts tries.
func (f *follower[Tx]) commitAttempts(ctx context.Context, events []Event, pos es.Position, attempts int) error {
	r := f.r
	cp := Checkpoint{Position: pos, Rebuilding: f.cp.Rebuilding, Partitions: r.partitions()}
	var apply func(Tx) error
	var tb *batch
	if len(events) > 0 {
		var t batch
		ctx, t = r.tel.startBatch(ctx, f.version, events, f.cp.Position.String(), pos.String())
		tb = &t
		b := Batch{Projection: r.p.Name, Version: f.version, Events: events}
		apply = func(tx Tx) error { return r.p.Handle(ctx, tx, b) }
	}
	var err error
	attempt := 1
	defer func() {
		if tb != nil {
			tb.end(ctx, attempt, err)
		}
	}()
	for ; attempt <= attempts; attempt++ {
		if err = f.commit(ctx, cp, apply); err == nil {
			f.committed(cp, events)
			return nil
		}
		if ctx.Err() != nil || attempt == attempts || errors.Is(err, ErrFenced) {
			// ErrUnavailable is retried: the broker may be back.
			break
		}
		if tb != nil {
			tb.retry(ctx)
		}
		r.cfg.logger.WarnContext(ctx, "projection: batch failed; retrying", "projection", r.p.Name,
			"events", len(events), "attempt", attempt, "error", err)
		if serr := backoff.Sleep(ctx, backoff.Policy{First: r.cfg.backoff, Max: 100 * r.cfg.backoff, Jitter: 0.5}.Wait(attempt)); serr != nil {
			err = serr
			return err
		}
	}
	return err
}

// commit commits cp and apply in one transaction, after the reset of the
// read model when a rebuild in place has not committed yet.
func (f *follower[Tx]) commit(ctx context.Context, cp Checkpoint, apply func(Tx) error) error {
	r := f.r
	if f.reset {
		then := apply
		apply = func(tx Tx) error {
			if err := r.p.Reset(ctx, tx, f.version); err != nil {
				return &resetError{fmt.Errorf("projection %s: reset of version %d: %w", r.p.Name, f.version, err)}
			}
			if then != nil {
				return then(tx)
			}
			return nil
		}
	}
	if err := r.cps.Commit(ctx, r.key(f.version), cp, apply); err != nil {
		return err
	}

	f.reset = false
	return nil
}

// resetError is a failure of a projection's Reset: no event is to blame.
type resetError struct{ err error }

func (e *resetError) Error() string { return e.err.Error() }
func (e *resetError) Unwrap() error { return e.err }

func (f *follower[Tx]) committed(cp Checkpoint, events []Event) {
	f.cp = cp
	r := f.r
	r.mu.Lock()
	r.status.Checkpoint = cp.Position
	r.status.Events += int64(len(events))
	r.status.Pending = max(r.status.Pending-len(events), 0) // before WaitFor wakes
	if len(events) > 0 {
		r.status.LastEvent = events[len(events)-1].Created
	}
	r.mu.Unlock()
	r.notify()
	f.progress.update(cp.Position, len(events), false)
}

// caughtUp ends a rebuild, switches the active version if needed, and goes
// live.
func (f *follower[Tx]) caughtUp(ctx context.Context) error {
	r := f.r
	if f.cp.Rebuilding && !f.stillResetting(ctx) {
		cp := Checkpoint{Position: f.cp.Position, Partitions: r.partitions()}
		if err := f.commit(ctx, cp, nil); err != nil {
			return fmt.Errorf("projection %s: end of rebuild: %w", r.p.Name, err)
		}
		f.cp = cp
	}
	switch {
	case r.part == nil:
		if err := r.activate(ctx, f.version); err != nil {
			return err
		}
	case r.part.built != nil:
		// Every time, not only at the end of the build: the group may
		// have stopped before the last partition reported.
		if err := r.part.built(ctx, f.version); err != nil {
			return err
		}
	}
	f.progress.update(f.cp.Position, 0, true)
	r.lives.Add(1)
	r.setState(StateLive)
	return nil
}

// stillResetting reports whether the partition must keep its rebuild
// going because the rebuild in place of its version has not set every
// partition back yet (a failure to tell counts as yes: the partition ends
// its rebuild the next time it catches up).
func (f *follower[Tx]) stillResetting(ctx context.Context) bool {
	if f.r.part == nil || f.r.part.resetting == nil {
		return false
	}
	resetting, err := f.r.part.resetting(ctx, f.version)
	return resetting || err != nil
}

// activateFirst makes version active at once when no version ever was, so
// that queries find the read model (filling up) from the start; a later
// version becomes active only once it has caught up.
func (r *Runner[Tx]) activateFirst(ctx context.Context, version int) error {
	v, ok := r.cps.(Versions[Tx])
	if !ok {
		return nil
	}
	active, err := v.ActiveVersion(ctx, r.p.Name)
	if err != nil || active != 0 {
		return err
	}
	return r.activate(ctx, version)
}

// activate makes version the active one if the store records versions and
// it is not yet.
func (r *Runner[Tx]) activate(ctx context.Context, version int) error {
	v, ok := r.cps.(Versions[Tx])
	if !ok {
		return nil
	}
	active, err := v.ActiveVersion(ctx, r.p.Name)
	if err != nil || active == version {
		return err
	}
	err = v.SetActiveVersion(ctx, r.p.Name, version, func(tx Tx) error {
		if r.p.Activate == nil {
			return nil
		}
		return r.p.Activate(ctx, tx, version)
	})
	if err != nil {
		return fmt.Errorf("projection %s: switch to version %d: %w", r.p.Name, version, err)
	}
	if active != 0 {
		r.cfg.logger.InfoContext(ctx, "projection: switched version", "projection", r.p.Name, "from", active, "to", version)
	}
	return nil
}
