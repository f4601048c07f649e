package projection

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/eventfold/eventfold/es"
)

// WithWorkers sets how many workers apply the partitions of a
// partitioned projection in CatchUp and the rebuilds: one per core
// (GOMAXPROCS), at most one per partition, by default.
func WithWorkers(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: %d workers", ErrInvalidProjection, n)
		}
		c.workers = n
		return nil
	}
}

// CatchUp applies the log to every partition until they have all caught
// up, commits, and returns nil; if ctx ends first, each partition commits
// its batch under way and CatchUp returns ctx's error. It reads the log
// once, from the lowest checkpoint of the partitions, and hands the events
// to parallel workers by partition (see [WithWorkers]); a partition skips
// the events at or before its own checkpoint, so that none is applied
// twice. It holds every partition's lease while it runs.
func (g *Partitioned[Tx]) CatchUp(ctx context.Context) error {
	return g.parallel(ctx, plan{mode: modeCatchUp})
}

// Rebuild rebuilds the read model in place, as [Runner.Rebuild], with the
// parallel workers of CatchUp: it empties the read model (Reset) in the
// transaction that marks the version as rebuilding, sets every partition
// back to the start, and replays the log. Each partition commits its
// checkpoint with its batches, so the rebuild's progress is the lowest of
// them, below which every partition is done: interrupted, the next
// Rebuild, CatchUp or Run resumes each partition where it stopped.
func (g *Partitioned[Tx]) Rebuild(ctx context.Context, report func(Progress)) error {
	return g.parallel(ctx, plan{mode: modeCatchUp, reset: true, report: report})
}

// RebuildBlueGreen builds the next version of the read model beside the
// active one with the parallel workers of CatchUp, and switches queries to
// it once every partition has caught up, as [Runner.RebuildBlueGreen].
// This is also how the number of partitions changes: give the projection
// a new Version with the new number, and rebuild.
func (g *Partitioned[Tx]) RebuildBlueGreen(ctx context.Context, report func(Progress)) (from, to int, err error) {
	v, ok := g.cps.(Versions[Tx])
	if !ok {
		return 0, 0, ErrNoVersions
	}
	active, err := v.ActiveVersion(ctx, g.p.Name)
	if err != nil {
		return 0, 0, err
	}
	from = max(active, g.p.version())
	to = from + 1
	err = g.parallel(ctx, plan{mode: modeCatchUp, version: to, report: report})
	return from, to, err
}

// DropVersion deletes an old version of the read model (Projection.Drop)
// and forgets the checkpoints of its partitions. The active version
// cannot be dropped.
func (g *Partitioned[Tx]) DropVersion(ctx context.Context, version int) error {
	if g.p.Drop == nil {
		return fmt.Errorf("%w: %s has no Drop", ErrInvalidProjection, g.p.Name)
	}
	v, ok := g.cps.(Versions[Tx])
	if !ok {
		return ErrNoVersions
	}
	active, err := v.ActiveVersion(ctx, g.p.Name)
	if err != nil {
		return err
	}
	if version == active || version < 1 {
		return fmt.Errorf("%w: %s: cannot drop version %d (the active version is %d)", ErrInvalidProjection, g.p.Name, version, active)
	}
	for _, r := range g.parts {
		if err := g.cps.Commit(ctx, r.key(version), Checkpoint{}, nil); err != nil {
			return err
		}
	}
	return g.cps.Commit(ctx, key(g.p.Name, version), Checkpoint{}, func(tx Tx) error {
		return g.p.Drop(ctx, tx, version)
	})
}

// parallel runs the plan pl (a catch-up, a rebuild in place, a blue/green
// build) on every partition at once: one reader of the log, workers that
// apply the partitions.
func (g *Partitioned[Tx]) parallel(ctx context.Context, pl plan) (err error) {
	if !g.begin() {
		return fmt.Errorf("projection %s: already running", g.p.Name)
	}
	defer g.end()
	for i, r := range g.parts {
		if !r.begin() {
			for _, r := range g.parts[:i] {
				r.end(ctx, nil)
			}
			return fmt.Errorf("projection %s: partition %d: already running", g.p.Name, i)
		}
	}
	defer func() {
		for _, r := range g.parts {
			r.end(ctx, err)
		}
	}()
	version := pl.version
	if version == 0 {
		if version, err = g.parts[0].versionToRun(ctx); err != nil {
			return err
		}
	}
	work, release, err := g.leaseAll(ctx, version)
	if err != nil {
		return err
	}
	defer release()
	err = g.build(work, pl, version)
	if ctx.Err() == nil && work.Err() != nil {
		return fmt.Errorf("projection %s: %w", key(g.p.Name, version), context.Cause(work))
	}
	return err
}

// leaseAll takes the leases of version (its key, then each partition's, in
// order, so that two rebuilds do not deadlock) if the store grants
// leases. The returned context ends when one of them is lost.
func (g *Partitioned[Tx]) leaseAll(ctx context.Context, version int) (context.Context, func(), error) {
	l, ok := g.cps.(Leaser)
	if !ok {
		return ctx, func() {}, nil
	}
	work, lost := context.WithCancelCause(ctx)
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
		lost(nil)
	}
	watch := func(held context.Context) {
		stop := context.AfterFunc(held, func() {
			if ctx.Err() == nil { // lost, not ended with ctx: work ends with ctx's error then
				lost(context.Cause(held))
			}
		})
		releases = append(releases, func() { stop() })
	}
	held, rel, err := l.Lease(ctx, key(g.p.Name, version))
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("projection %s: lease: %w", key(g.p.Name, version), err)
	}
	releases = append(releases, rel)
	watch(held)
	for _, r := range g.parts {
		held, rel, err := r.lease(ctx, r.key(version))
		if err != nil {
			release()
			return nil, nil, err
		}
		releases = append(releases, rel)
		watch(held)
	}
	return work, release, nil
}

// build runs pl on version, holding the leases.
func (g *Partitioned[Tx]) build(ctx context.Context, pl plan, version int) error {
	if err := g.setup(ctx, version, pl.version == 0); err != nil {
		return err
	}
	cps, err := g.startingPoints(ctx, pl, version)
	if err != nil {
		return err
	}
	from := cps[0].Position
	for _, cp := range cps {
		if cp.Position.Compare(from) < 0 {
			from = cp.Position
		}
	}
	head, err := headOf(ctx, g.store)
	if err != nil {
		return fmt.Errorf("projection %s: %w", g.p.Name, err)
	}
	for i, cp := range cps {
		if cp.Position.Compare(head.Position) > 0 {
			return fmt.Errorf("%w: %s is at %v, the log ends at %v", ErrCheckpointBeyondHead, g.parts[i].key(version), cp.Position, head.Position)
		}
	}
	report, gap := g.cfg.progress, g.cfg.progressGap
	if pl.report != nil {
		report = pl.report
	}
	prog := newGroupProgress(newProgress(g.p.Name, version, from, head, report, gap), cps)
	followers := make([]*follower[Tx], len(g.parts))
	for i, r := range g.parts {
		followers[i] = &follower[Tx]{r: r, mode: modeCatchUp, version: version, cp: cps[i], progress: prog.partition(i)}
	}
	if err := g.fanOut(ctx, followers, from); err != nil {
		if ctx.Err() != nil {
			prog.stopped()
		}
		return err
	}
	return g.finish(ctx, version, pl, followers, prog)
}

// startingPoints loads the checkpoints of the partitions of version and
// sets them up for pl. A rebuild in place resets the read model in the
// transaction that marks the version as rebuilding, then sets every
// partition back to the start and marks the reset done; one that was
// interrupted (a partition, or the version, is still rebuilding) goes on
// instead. A version that queries do not read yet is marked as being
// built.
func (g *Partitioned[Tx]) startingPoints(ctx context.Context, pl plan, version int) ([]Checkpoint, error) {
	k := key(g.p.Name, version)
	layout, err := g.cps.Load(ctx, k)
	if err != nil {
		return nil, err
	}
	cps := make([]Checkpoint, len(g.parts))
	interrupted := layout.Rebuilding
	for i, r := range g.parts {
		if cps[i], err = g.cps.Load(ctx, r.key(version)); err != nil {
			return nil, err
		}
		if err := r.checkLayout(r.key(version), cps[i]); err != nil {
			return nil, err
		}
		interrupted = interrupted || cps[i].Rebuilding
	}
	if pl.reset && !interrupted {
		if g.p.Reset == nil {
			return nil, fmt.Errorf("%w: %s has no Reset: it cannot be rebuilt in place", ErrInvalidProjection, g.p.Name)
		}
		layout = Checkpoint{Partitions: g.p.Partitions, Rebuilding: true}
		err := g.cps.Commit(ctx, k, layout, func(tx Tx) error {
			if err := g.p.Reset(ctx, tx, version); err != nil {
				return fmt.Errorf("projection %s: reset of version %d: %w", g.p.Name, version, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for i, r := range g.parts {
		if layout.Rebuilding && !cps[i].Rebuilding {
			// Reset and not started again yet: back to the start.
			cps[i] = Checkpoint{Partitions: g.p.Partitions, Rebuilding: true}
			err = g.cps.Commit(ctx, r.key(version), cps[i], nil)
		} else {
			cps[i], err = r.building(ctx, version, cps[i])
		}
		if err != nil {
			return nil, fmt.Errorf("projection %s: %w", r.key(version), err)
		}
		state := StateCatchingUp
		if cps[i].Rebuilding {
			state = StateRebuilding
		}
		r.mu.Lock()
		r.status.Version, r.status.State, r.status.Checkpoint, r.status.Err = version, state, cps[i].Position, nil
		r.mu.Unlock()
		r.notify()
	}
	if layout.Rebuilding {
		if err := g.cps.Commit(ctx, k, Checkpoint{Partitions: g.p.Partitions}, nil); err != nil {
			return nil, fmt.Errorf("projection %s: %w", k, err)
		}
	}
	return cps, nil
}

// finish ends a build that has caught up: each partition ends its rebuild
// (the version's reset was marked done when they were all set back), then
// queries switch to the version if it is new.
func (g *Partitioned[Tx]) finish(ctx context.Context, version int, pl plan, followers []*follower[Tx], prog *groupProgress) error {
	for i, r := range g.parts {
		if cp := followers[i].cp; cp.Rebuilding {
			cp.Rebuilding = false
			if err := g.cps.Commit(ctx, r.key(version), cp, nil); err != nil {
				return fmt.Errorf("projection %s: end of rebuild: %w", r.key(version), err)
			}
			followers[i].cp = cp
		}
		r.setState(StateLive)
	}
	if pl.version != 0 {
		if err := g.parts[0].activate(ctx, version); err != nil {
			return err
		}
	} else if err := g.built(ctx, version); err != nil {
		return err
	}
	prog.done()
	return nil
}

// work is what the reader hands to a worker: an event of one of its
// partitions, or a tick that says every message up to a position has been
// handed out.
type work struct {
	part int
	ev   es.RecordedEvent
	tick es.Position
	end  bool // caught up: commit everything
}

// ticksPerSync is how many ticks pass between two commits of every
// partition with something to commit, so that the checkpoints of the
// partitions that get few events move too.
const ticksPerSync = 16

// fanOut reads the log from from once and applies it to the partitions
// with parallel workers until caught up.
func (g *Partitioned[Tx]) fanOut(ctx context.Context, all []*follower[Tx], from es.Position) error {
	workers := g.cfg.workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(g.parts))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chans := make([]chan work, workers)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range chans {
		chans[w] = make(chan work, min(max(g.cfg.batchSize, minReadAhead), maxReadAhead))
		var followers []*follower[Tx]
		for i := w; i < len(all); i += workers {
			followers = append(followers, all[i])
		}
		wg.Go(func() {
			if errs[w] = g.work(ctx, chans[w], followers, workers); errs[w] != nil {
				cancel(errs[w])
			}
		})
	}
	rerr := g.read(ctx, from, chans)
	for _, c := range chans {
		close(c)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return rerr
}

// read reads the log from from and hands its events out to the workers,
// by partition, with a tick to every worker each batch of messages and at
// the end.
func (g *Partitioned[Tx]) read(ctx context.Context, from es.Position, chans []chan work) error {
	filter, keep := g.p.filter()
	send := func(c chan work, w work) bool {
		select {
		case c <- w:
			return true
		case <-ctx.Done():
			return false
		}
	}
	broadcast := func(w work) bool {
		for _, c := range chans {
			if !send(c, w) {
				return false
			}
		}
		return true
	}
	var last es.Position
	n := 0
	for msg, err := range g.store.SubscribeAll(ctx, es.SubscribeAllOptions{From: from, Filter: filter}) {
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("projection %s: subscription: %w", g.p.Name, err)
		}
		switch msg.Kind {
		case es.KindEvent:
			last = msg.Position
			if keep(msg.Event) {
				i := g.p.partitionOf(msg.Event)
				if !send(chans[i%len(chans)], work{part: i, ev: msg.Event}) {
					return context.Cause(ctx)
				}
			}
		case es.KindCheckpoint:
			last = msg.Position
		case es.KindCaughtUp:
			if !broadcast(work{tick: last, end: true}) {
				return context.Cause(ctx)
			}
			return nil
		}
		if n++; n%g.cfg.batchSize == 0 && !broadcast(work{tick: last}) {
			return context.Cause(ctx)
		}
	}
	return context.Cause(ctx)
}

// work applies what the reader hands to one worker, for its partitions
// (followers, worker w holding partitions w, w+workers, ...), until the
// reader closes the channel or the end: each partition commits a full
// batch with its checkpoint, every partition with something to commit
// does at each sync, and all of them at the end. Stopped, it commits the
// batches under way.
func (g *Partitioned[Tx]) work(ctx context.Context, c <-chan work, followers []*follower[Tx], workers int) error {
	of := func(part int) *follower[Tx] { return followers[part/workers] }
	ticks := 0
	for w := range c {
		if ctx.Err() != nil {
			break
		}
		switch {
		case w.end:
			for _, f := range followers {
				f.advance(w.tick)
				if err := f.flush(ctx); err != nil {
					return err
				}
			}
			return nil
		case !w.tick.IsZero():
			ticks++
			for _, f := range followers {
				f.advance(w.tick)
				if ticks%ticksPerSync == 0 {
					if err := f.flush(ctx); err != nil {
						return err
					}
				}
			}
		default:
			if err := g.apply(ctx, of(w.part), w.ev); err != nil {
				return err
			}
		}
	}
	// Stopped: commit what is under way, within the stop timeout, and
	// say why it stopped (the reader may have handed out the end before
	// ctx ended, and the worker not have reached it).
	errs := []error{context.Cause(ctx)}
	for _, f := range followers {
		if err := f.stop(ctx); err != nil && !errors.Is(err, ctx.Err()) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// apply adds ev to the batch of its partition's follower f, unless f's
// checkpoint is past it (applied before an interruption), and commits a
// full batch.
func (g *Partitioned[Tx]) apply(ctx context.Context, f *follower[Tx], ev es.RecordedEvent) error {
	if ev.Position.Compare(f.cp.Position) <= 0 {
		return nil
	}
	payload, bad := f.r.decode(ev)
	if bad != nil {
		if err := f.flush(ctx); err != nil {
			return err
		}
		return f.poison(ctx, ev, bad)
	}
	f.add(Event{RecordedEvent: ev, Payload: payload})
	if len(f.batch) >= g.cfg.batchSize {
		return f.flush(ctx)
	}
	return nil
}

// groupProgress adds the progress of the partitions up, into the
// progress of the whole: the events applied by all, and the lowest
// checkpoint.
type groupProgress struct {
	mu     sync.Mutex
	whole  *progress
	cps    []Checkpoint
	events []int64
}

func newGroupProgress(whole *progress, cps []Checkpoint) *groupProgress {
	return &groupProgress{whole: whole, cps: append([]Checkpoint(nil), cps...), events: make([]int64, len(cps))}
}

// partition returns the progress of partition i, which reports to g.
func (g *groupProgress) partition(i int) *progress {
	return &progress{report: func(p Progress) { g.update(i, p) }}
}

func (g *groupProgress) update(i int, p Progress) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cps[i].Position = p.Position
	added := p.Events - g.events[i]
	g.events[i] = p.Events
	g.whole.update(g.lowest(), int(added), false)
}

// lowest returns the lowest checkpoint of the partitions. g.mu is held.
func (g *groupProgress) lowest() es.Position {
	low := g.cps[0].Position
	for _, cp := range g.cps[1:] {
		if cp.Position.Compare(low) < 0 {
			low = cp.Position
		}
	}
	return low
}

func (g *groupProgress) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.whole.update(g.lowest(), 0, true)
}

func (g *groupProgress) stopped() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.whole.stopped(g.lowest())
}
