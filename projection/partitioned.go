package projection

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/internal/backoff"
)

// Partitioned runs a projection split into partitions
// ([Projection.Partitions]). Each partition is a runner of its own: it
// follows the log from its own checkpoint, applies the events of its
// partition in log order, and commits its checkpoint with its batches,
// under a lease of its own when the checkpoint store grants leases
// ([Leaser]). The events of one key (one stream by default) are on one
// partition, so they are applied in order; the partitions run in
// parallel.
//
// The replicas of a service that run the same projection share its
// partitions when the checkpoint store implements [Membership]: each
// replica joins the projection's group, and partition i runs on the
// replica at index i modulo their number, the members sorted by name. A
// replica that joins takes its share within the rebalance interval (see
// [WithRebalance]); those that leave or die (their membership expires)
// have their partitions taken over once their leases have expired. The
// leases fence the commits during a handover: a replica that lost a
// partition's lease cannot commit for it. Without Membership, every
// replica tries to run every partition, and the leases alone decide.
//
// Create it with [NewPartitioned]. Its methods mirror [Runner]'s, so that
// the replay tool drives it alike: Run runs this replica's share, CatchUp,
// Rebuild and RebuildBlueGreen read the log once for all partitions and
// apply it with parallel workers ([WithWorkers]).
type Partitioned[Tx any] struct {
	store  es.Store
	cps    Checkpoints[Tx]
	p      Projection[Tx]
	cfg    config
	parts  []*Runner[Tx]
	member string

	mu      sync.Mutex
	running bool
	feed    *feed[Tx] // while Run runs
}

// NewPartitioned returns the runner of projection p, which must have
// Partitions above 1, over the events of store decoded by types, with
// checkpoints in cps. The options are those of [NewRunner], and apply to
// every partition; [WithRebalance] and [WithWorkers] apply to partitioned
// projections alone.
func NewPartitioned[Tx any](store es.Store, cps Checkpoints[Tx], types *es.Registry, p Projection[Tx], opts ...Option) (*Partitioned[Tx], error) {
	if !p.partitioned() {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s has %d partitions: a partitioned projection has at least 2 (or use NewRunner)",
			ErrInvalidProjection, p.Name, p.Partitions)
	}
	g := &Partitioned[Tx]{store: store, cps: cps, p: p, parts: make([]*Runner[Tx], p.Partitions), member: memberName()}
	for i := range g.parts {
		r, err := newRunner(store, cps, types, p, i, opts...)
		if err != nil {
			return nil, err
		}
		r.part.built, r.part.resetting = g.built, g.resetting
		r.part.feed = func(ctx context.Context, from es.Position) (<-chan item, func(), bool) {
			g.mu.Lock()
			f := g.feed
			g.mu.Unlock()
			if f == nil {
				return nil, nil, false
			}
			items, stop := f.subscribe(ctx, r, from)
			return items, stop, true
		}
		g.parts[i] = r
	}
	g.cfg = g.parts[0].cfg
	return g, nil
}

// memberName names this replica in the groups it joins: its host and
// process, and a random suffix, so that two groups of one process are two
// members.
func memberName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}

// WithRebalance sets how often the replicas of a partitioned projection
// look at who else runs it, to share its partitions (1s by default). A
// replica that joins takes its share within this interval; one that
// leaves has its share taken over within the interval and the lease's
// time-to-live.
func WithRebalance(every time.Duration) Option {
	return func(c *config) error {
		if every <= 0 {
			return fmt.Errorf("%w: rebalance every %v", ErrInvalidProjection, every)
		}
		c.rebalance = every
		return nil
	}
}

// Name returns the projection's name.
func (g *Partitioned[Tx]) Name() string { return g.p.Name }

// Member returns the name under which this replica joins the group of
// the projection ([Membership]): its host, process ID and a random suffix.
func (g *Partitioned[Tx]) Member() string { return g.member }

// Partition returns the runner of partition i, for its status, its lag
// or to wait for it. Run, CatchUp and the rebuilds run it: do not run it
// by itself.
func (g *Partitioned[Tx]) Partition(i int) *Runner[Tx] { return g.parts[i] }

// group is the name of the projection's group in the membership store.
func (g *Partitioned[Tx]) group() string { return g.p.Name }

// Run runs this replica's share of the partitions until ctx is done, then
// stops them (each commits its batch under way) and returns nil. It first
// sets the version up (Projection.Setup runs once, under the lease of the
// projection's version when the store grants leases) and checks that the
// stored checkpoints were written with the projection's number of
// partitions ([ErrPartitionsChanged]).
//
// A partition that fails for good (a poison event, a corrupt checkpoint;
// with [WithRestart] the others restart) ends Run with its error, once the
// other partitions have stopped. A running group follows the switches of
// the active version as [Runner.Run] does, and switches queries itself to
// a version it builds once every partition has caught up with it.
func (g *Partitioned[Tx]) Run(ctx context.Context) error {
	if !g.begin() {
		return fmt.Errorf("projection %s: already running", g.p.Name)
	}
	defer g.end()
	if err := g.prepareRetrying(ctx); err != nil {
		if stoppedByCtx(ctx, err) {
			return nil
		}
		return err
	}
	// The partitions that run here share one read of the log.
	f := newFeed(g)
	fctx, stopFeed := context.WithCancel(ctx)
	go f.run(fctx)
	g.mu.Lock()
	g.feed = f
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.feed = nil
		g.mu.Unlock()
		stopFeed()
		<-f.done
	}()
	m, shared := g.cps.(Membership)
	if !shared {
		return g.runAll(ctx)
	}
	leave, err := m.Join(ctx, g.group(), g.member) // a member until ctx ends
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("projection %s: join the replicas: %w", g.p.Name, err)
	}
	defer leave()
	return g.share(ctx, m)
}

func (g *Partitioned[Tx]) begin() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running {
		return false
	}
	g.running = true
	return true
}

func (g *Partitioned[Tx]) end() {
	g.mu.Lock()
	g.running = false
	g.mu.Unlock()
}

// prepareRetrying sets the version to run up, retrying with the restart
// backoff when the runner restarts ([WithRestart]) and the failure is
// not one that needs a person.
func (g *Partitioned[Tx]) prepareRetrying(ctx context.Context) error {
	for failures := 1; ; failures++ {
		version, err := g.parts[0].versionToRun(ctx)
		if err == nil {
			err = g.prepare(ctx, version, true)
		}
		if err == nil || g.cfg.restart <= 0 || !restartable(err) || ctx.Err() != nil {
			return err
		}
		wait := backoff.Policy{First: g.cfg.restart, Max: g.cfg.restartMax, Jitter: 0.5}.Wait(failures)
		g.cfg.logger.WarnContext(ctx, "projection: setting up a partitioned projection failed; trying again",
			"projection", g.p.Name, "error", err, "retry", wait)
		if err := backoff.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// prepare sets version up, under the lease of its key when the store
// grants leases: it checks the number of partitions recorded there,
// records it, runs Projection.Setup in the same transaction, and, if
// first, makes version active when no version is.
func (g *Partitioned[Tx]) prepare(ctx context.Context, version int, first bool) error {
	if l, ok := g.cps.(Leaser); ok {
		k := key(g.p.Name, version)
		held, release, err := l.Lease(ctx, k)
		if err != nil {
			return fmt.Errorf("projection %s: lease: %w", k, err)
		}
		defer release()
		ctx = held
	}
	return g.setup(ctx, version, first)
}

// setup is prepare, for a caller that holds the version's lease.
func (g *Partitioned[Tx]) setup(ctx context.Context, version int, first bool) error {
	k := key(g.p.Name, version)
	cp, err := g.cps.Load(ctx, k)
	if err != nil {
		return err
	}
	switch {
	case cp.Partitions == 0 && (!cp.Position.IsZero() || cp.Rebuilding):
		return layoutError(k, 0, g.p.Partitions) // built without partitions
	case cp.Partitions != 0 && cp.Partitions != g.p.Partitions:
		return layoutError(k, cp.Partitions, g.p.Partitions)
	}
	if cp.Partitions == 0 || g.p.Setup != nil {
		var setup func(Tx) error
		if g.p.Setup != nil {
			setup = func(tx Tx) error { return g.p.Setup(ctx, tx, version) }
		}
		cp = Checkpoint{Partitions: g.p.Partitions, Rebuilding: cp.Rebuilding}
		if err := g.cps.Commit(ctx, k, cp, setup); err != nil {
			return fmt.Errorf("projection %s: setup of version %d: %w", g.p.Name, version, err)
		}
	}
	if first {
		return g.parts[0].activateFirst(ctx, version)
	}
	return nil
}

// built is called by a partition that has caught up with version: once
// every partition has built it, it becomes the active version.
func (g *Partitioned[Tx]) built(ctx context.Context, version int) error {
	v, ok := g.cps.(Versions[Tx])
	if !ok {
		return nil
	}
	active, err := v.ActiveVersion(ctx, g.p.Name)
	if err != nil || active == version {
		return err
	}
	for _, r := range g.parts {
		cp, err := g.cps.Load(ctx, r.key(version))
		if err != nil {
			return err
		}
		if cp.Partitions != g.p.Partitions || cp.Rebuilding {
			return nil // not built yet: the last partition to catch up switches
		}
	}
	return g.parts[0].activate(ctx, version)
}

// resetting reports whether a rebuild in place of version has reset the
// read model and not yet set every partition back to the start, and ends
// that state once every partition has been. A partition does not end its
// own rebuild meanwhile: a rebuild in place sets back the partitions that
// have not started theirs, so a partition that ended its rebuild
// before the version did would be rebuilt twice over.
func (g *Partitioned[Tx]) resetting(ctx context.Context, version int) (bool, error) {
	k := key(g.p.Name, version)
	layout, err := g.cps.Load(ctx, k)
	if err != nil || !layout.Rebuilding {
		return false, err
	}
	for _, r := range g.parts {
		cp, err := g.cps.Load(ctx, r.key(version))
		if err != nil {
			return true, err
		}
		if !cp.Rebuilding {
			return true, nil
		}
	}
	if err := g.cps.Commit(ctx, k, Checkpoint{Partitions: g.p.Partitions}, nil); err != nil {
		return true, fmt.Errorf("projection %s: %w", k, err)
	}
	return false, nil
}

// runAll runs every partition, each waiting for its lease if the store
// grants leases, until ctx is done or one fails.
func (g *Partitioned[Tx]) runAll(ctx context.Context) error {
	s := newShares(g)
	defer s.stopAll()
	for i := range g.parts {
		s.start(ctx, i)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case sh := <-s.exited:
			if err := s.failure(ctx, sh); err != nil {
				return err
			}
		}
	}
}

// share runs this replica's share of the partitions, looking at the
// group's members every rebalance interval, until ctx is done or a
// partition fails.
func (g *Partitioned[Tx]) share(ctx context.Context, m Membership) error {
	s := newShares(g)
	defer s.stopAll()
	tick := time.NewTicker(g.cfg.rebalance)
	defer tick.Stop()
	failing := false
	for {
		mctx, cancel := context.WithTimeout(ctx, holderTimeout)
		members, err := m.Members(mctx, g.group())
		cancel()
		switch {
		case err == nil:
			if failing {
				g.cfg.logger.InfoContext(ctx, "projection: the replicas can be seen again", "projection", g.p.Name)
				failing = false
			}
			s.assign(ctx, Assignment(members, g.member, len(g.parts)))
		case ctx.Err() == nil && !failing:
			// The partitions run on meanwhile: their leases keep them safe.
			g.cfg.logger.WarnContext(ctx, "projection: listing the replicas failed; keeping the partitions as they are",
				"projection", g.p.Name, "error", err)
			failing = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case sh := <-s.exited:
			if err := s.failure(ctx, sh); err != nil {
				return err
			}
		}
	}
}

// Assignment returns the partitions, of partitions in all, that member
// runs when the group's members are members: partition i runs on the
// member at index i modulo their number, the members sorted by name
// (member counts as one even if not listed). Every member computes the
// same assignment from the same list, and no two members get one
// partition.
func Assignment(members []string, member string, partitions int) []int {
	all := slices.Clone(members)
	if !slices.Contains(all, member) {
		all = append(all, member)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	at := slices.Index(all, member)
	var mine []int
	for i := at; i < partitions; i += len(all) {
		mine = append(mine, i)
	}
	return mine
}

// shares are the partitions that run in this replica.
type shares[Tx any] struct {
	g       *Partitioned[Tx]
	running map[int]*share
	exited  chan *share // a partition's Run returned
}

// share is one partition running.
type share struct {
	index    int
	stop     context.CancelFunc
	done     chan struct{}
	err      error       // Run's result, once done is closed
	stopping atomic.Bool // stopped by the group, not by itself
}

func newShares[Tx any](g *Partitioned[Tx]) *shares[Tx] {
	return &shares[Tx]{g: g, running: make(map[int]*share), exited: make(chan *share, len(g.parts))}
}

func (s *shares[Tx]) start(ctx context.Context, i int) {
	pctx, stop := context.WithCancel(ctx)
	sh := &share{index: i, stop: stop, done: make(chan struct{})}
	s.running[i] = sh
	go func() {
		sh.err = s.g.parts[i].Run(pctx)
		close(sh.done)
		if !sh.stopping.Load() {
			// At most one share per partition is running and not
			// stopped: the channel has room for each.
			s.exited <- sh
		}
	}()
}

// assign starts the partitions of want that do not run, and stops those
// that run and are not in want, waiting for them to commit and give their
// leases back.
func (s *shares[Tx]) assign(ctx context.Context, want []int) {
	var stopping []*share
	for i, sh := range s.running {
		if !slices.Contains(want, i) {
			sh.stopping.Store(true)
			sh.stop()
			stopping = append(stopping, sh)
			delete(s.running, i)
		}
	}
	for _, sh := range stopping {
		<-sh.done
	}
	for _, i := range want {
		if _, ok := s.running[i]; !ok {
			s.start(ctx, i)
		}
	}
	if len(stopping) > 0 || len(want) != len(s.running) {
		s.g.cfg.logger.InfoContext(ctx, "projection: partitions assigned", "projection", s.g.p.Name,
			"member", s.g.member, "partitions", want)
	}
}

// failure reports why the partition of sh returned: its failure, or nil
// if it was stopped (by the group, or as ctx ended).
func (s *shares[Tx]) failure(ctx context.Context, sh *share) error {
	if sh.stopping.Load() {
		return nil // stopped by assign
	}
	if s.running[sh.index] == sh {
		delete(s.running, sh.index)
	}
	if sh.err == nil || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("projection %s: partition %d: %w", s.g.p.Name, sh.index, sh.err)
}

// stopAll stops every partition and waits for them.
func (s *shares[Tx]) stopAll() {
	for _, sh := range s.running {
		sh.stopping.Store(true)
		sh.stop()
	}
	for i, sh := range s.running {
		<-sh.done
		delete(s.running, i)
	}
}

// Status returns the status of the projection as a whole, with that of
// each partition in Parts (a partition that runs on another replica
// reports [StateElsewhere] and its holder, when the store can tell). The
// whole's Checkpoint is the lowest of the partitions', below which every
// partition is done; its State is the least advanced of theirs (failed,
// restarting, rebuilding, catching up, standby, live, stopped, running
// elsewhere, in that order), so that a projection whose partitions all
// run live, here or elsewhere, is live, and one with a partition that
// this replica is about to run (standby) is not yet; its Holder is the first holder a
// partition names.
func (g *Partitioned[Tx]) Status(ctx context.Context) (Status, error) {
	parts := make([]Status, len(g.parts))
	for i, r := range g.parts {
		st, err := r.Status(ctx)
		if err != nil {
			return Status{}, fmt.Errorf("projection %s: partition %d: %w", g.p.Name, i, err)
		}
		parts[i] = st
	}
	return summary(g.p.Name, parts), nil
}

// stateRank orders the states from the least advanced.
var stateRank = map[State]int{StateFailed: 0, StateRestarting: 1, StateRebuilding: 2, StateCatchingUp: 3,
	StateStandby: 4, StateLive: 5, StateStopped: 6, StateElsewhere: 7}

// summary sums the statuses of the partitions up.
func summary(name string, parts []Status) Status {
	st := Status{Name: name, Partitions: len(parts), Parts: parts, State: StateElsewhere}
	for i, p := range parts {
		if i == 0 || p.Checkpoint.Compare(st.Checkpoint) < 0 {
			st.Checkpoint, st.LastEvent = p.Checkpoint, p.LastEvent
		}
		st.Version = max(st.Version, p.Version)
		st.Events += p.Events
		st.Pending += p.Pending
		st.Restarts += p.Restarts
		if stateRank[p.State] < stateRank[st.State] {
			st.State = p.State
		}
		if st.Err == nil {
			st.Err = p.Err
		}
		if st.Holder == "" {
			st.Holder = p.Holder
		}
	}
	return st
}

// Lag measures how far the projection is behind the log: the events that
// some partition still has to apply (one read of the log from the lowest
// checkpoint), and how much older than the head is the last event applied
// by the partition furthest behind.
func (g *Partitioned[Tx]) Lag(ctx context.Context) (Lag, error) {
	st, err := g.Status(ctx)
	if err != nil {
		return Lag{}, err
	}
	head, err := headOf(ctx, g.store)
	if err != nil {
		return Lag{}, err
	}
	lag := Lag{Head: head.Position}
	for i, p := range st.Parts {
		if p.Checkpoint.Compare(head.Position) > 0 {
			return lag, fmt.Errorf("%w: %s is at %v, the log ends at %v", ErrCheckpointBeyondHead,
				g.parts[i].key(p.Version), p.Checkpoint, head.Position)
		}
	}
	if st.Checkpoint == head.Position {
		return lag, nil
	}
	_, keep := g.p.filter()
	behind := func(ev es.RecordedEvent) bool {
		return keep(ev) && ev.Position.Compare(st.Parts[g.p.partitionOf(ev)].Checkpoint) > 0
	}
	return countLag(ctx, g.store, lag, st.Checkpoint, st.LastEvent, head, behind)
}

// WaitFor returns once the projection has committed position p, as
// [Runner.WaitFor] does: if p is the position of an event the projection
// consumes, once the partition of that event has committed it; otherwise,
// once every partition has passed p. A partition that runs in this
// replica wakes the wait when it commits; one that runs elsewhere is
// polled in the checkpoint store (every few milliseconds at first, then
// up to every 50ms). Give ctx a deadline.
func (g *Partitioned[Tx]) WaitFor(ctx context.Context, p es.Position) error {
	_, keep := g.p.filter()
	for ev, err := range g.store.ReadAll(ctx, es.ReadAllOptions{From: p, Limit: 1}) {
		if err != nil {
			return err
		}
		if ev.Position == p && keep(ev) {
			return g.waitPart(ctx, g.parts[g.p.partitionOf(ev)], p)
		}
	}
	for _, r := range g.parts {
		if err := g.waitPart(ctx, r, p); err != nil {
			return err
		}
	}
	return nil
}

// maxPoll bounds the wait between two looks at the checkpoint of a
// partition that runs elsewhere.
const maxPoll = 50 * time.Millisecond

// waitPart waits until partition r has committed p: through r.WaitFor
// while r runs here, by polling its checkpoint otherwise.
func (g *Partitioned[Tx]) waitPart(ctx context.Context, r *Runner[Tx], p es.Position) error {
	wait, last := time.Millisecond, es.Position{}
	for {
		r.mu.Lock()
		running := r.running
		r.mu.Unlock()
		if running {
			// The partition may be handed over meanwhile: look again
			// after a rebalance interval.
			wctx, cancel := context.WithTimeout(ctx, g.cfg.rebalance)
			err := r.WaitFor(wctx, p)
			cancel()
			if err == nil || ctx.Err() != nil || errors.Is(err, ErrStopped) {
				return err
			}
			continue
		}
		version, err := r.versionToRun(ctx)
		if err != nil {
			return err
		}
		cp, err := g.cps.Load(ctx, r.key(version))
		if err != nil {
			return err
		}
		if cp.Position.Compare(p) >= 0 {
			return nil
		}
		if cp.Position == last { // idle: is there anything left to apply?
			if done, err := r.nothingToApply(ctx, cp.Position, p); err != nil || done {
				return err
			}
		}
		last = cp.Position
		if err := backoff.Sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, maxPoll)
	}
}
