package projection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/eventfold/eventfold/es"
)

// feed is the one subscription to the log that the partitions running in
// one replica share (see Partitioned.Run): reading and decoding each event
// once for all of them, instead of once per partition, is what lets
// partitions scale when reading the log, not applying it, is the cost.
//
// A partition subscribes from its checkpoint and receives what its own
// subscription would deliver: its own events (kept, for it to decode),
// the others' positions only to move its checkpoint, the log's checkpoints, the
// caught-up message once, and the subscription's failure. The feed reads
// from the lowest position of its subscribers: one that subscribes from a
// position already passed makes it read again from there, and each
// subscriber skips what it has received (a subscriber that comes while the
// feed is live makes it read the tail again, so that it learns when it
// has caught up). A slow subscriber slows the
// others down, as a commit under way holds the feed until the
// subscriber's buffer has room.
type feed[Tx any] struct {
	g *Partitioned[Tx]

	mu      sync.Mutex
	list    []*feedSub         // the subscribers
	sendTo  []*feedSub         // the reader's: the subscribers of the message under way
	rewind  context.CancelFunc // ends the subscription under way, to read again from further back
	stale   bool               // a subscriber came since the reader chose where to read from
	changed chan struct{}      // closed and replaced when subscribers come
	sending sync.Mutex         // held while a message is handed out
	done    chan struct{}      // closed when the reader has ended
}

// feedSub is one partition's subscription to the feed.
type feedSub struct {
	part int
	ch   chan item
	ctx  context.Context // the follow's: the feed never blocks on a subscriber that stopped
	last es.Position     // the last position received (or subscribed from)
	live bool            // received the caught-up message
	// pending is the position of the last message that only moves the
	// checkpoint, not delivered yet (zero: none).
	pending es.Position
	// read is set once the feed reads from a position at or before last:
	// until then, the feed's messages are not the ones that follow last.
	read bool
}

func newFeed[Tx any](g *Partitioned[Tx]) *feed[Tx] {
	return &feed[Tx]{g: g, changed: make(chan struct{}), done: make(chan struct{})}
}

// run reads the log for the subscribers until ctx ends; Partitioned.Run
// owns it.
func (f *feed[Tx]) run(ctx context.Context) {
	defer close(f.done)
	var flusher sync.WaitGroup
	defer flusher.Wait()
	flusher.Go(func() { f.flush(ctx) })
	for ctx.Err() == nil {
		from, ok := f.lowest()
		if !ok {
			f.mu.Lock()
			changed := f.changed
			f.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-changed:
			}
			continue
		}
		f.read(ctx, from)
	}
}

// lowest returns the position to read from: the lowest of the
// subscribers'; false if there is none.
func (f *feed[Tx]) lowest() (es.Position, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var low es.Position
	first := true
	for _, s := range f.list {
		if first || s.last.Compare(low) < 0 {
			low, first = s.last, false
		}
		s.read = true
	}
	f.stale = false
	return low, !first
}

// read reads the log from from, handing its messages out, until ctx ends,
// a subscriber needs an earlier position, or the subscription fails.
func (f *feed[Tx]) read(ctx context.Context, from es.Position) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.mu.Lock()
	f.rewind = cancel
	stale := f.stale
	f.mu.Unlock()
	if stale {
		return // a subscriber came since lowest: choose again
	}
	defer func() {
		f.mu.Lock()
		f.rewind = nil
		f.mu.Unlock()
	}()
	filter, keep := f.g.p.filter()
	for msg, err := range f.g.store.SubscribeAll(sctx, es.SubscribeAllOptions{From: from, Filter: filter}) {
		if err != nil {
			if sctx.Err() != nil {
				return // stopped, or rewound: read again
			}
			f.fail(fmt.Errorf("the subscription failed: %w", err))
			return
		}
		// Its partition decodes it: in parallel with the others, and
		// only if it runs here.
		owner, it := -1, item{msg: msg}
		if msg.Kind == es.KindEvent && keep(msg.Event) {
			owner, it.undecoded = f.g.p.partitionOf(msg.Event), true
		}
		if !f.hand(sctx, msg, owner, it) {
			return
		}
	}
	if sctx.Err() == nil {
		f.fail(errors.New("the subscription ended")) // it only ends with an error; say so if not
	}
}

// hand gives a message to every subscriber that has not received it: an
// event to the partition that consumes it (to decode), the caught-up
// message to those not live; the others only learn the position (see
// targets). It reports false when the feed is to stop reading.
func (f *feed[Tx]) hand(ctx context.Context, msg es.Message, owner int, it item) bool {
	f.sending.Lock()
	defer f.sending.Unlock()
	targets := f.targets(msg, owner)
	for _, s := range targets {
		if msg.Kind == es.KindCaughtUp {
			// Its position first, then the news.
			if p := f.takePending(s); !p.IsZero() && !f.send(ctx, s, checkpointItem(p), nil) {
				return false
			}
		} else {
			it.keep = true // an event, to its owner
		}
		if !f.send(ctx, s, it, &msg) {
			return false
		}
	}
	return true
}

// targets returns the subscribers that msg is to be sent to, and records
// its position as pending for those to whom it only moves the checkpoint
// (another partition's event, the log's checkpoint): they get it, with
// the next ones, at the next flush, so that the feed neither waits for
// them nor wakes them up for each. The slice is reused.
func (f *feed[Tx]) targets(msg es.Message, owner int) []*feedSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sendTo = f.sendTo[:0]
	for _, s := range f.list {
		switch {
		case !s.read: // joined since the read began: after the rewind
		case msg.Kind == es.KindCaughtUp:
			if !s.live {
				f.sendTo = append(f.sendTo, s)
			}
		case msg.Position.Compare(s.last) <= 0: // received before a rewind, or before its from
		case msg.Kind == es.KindEvent && s.part == owner:
			f.sendTo = append(f.sendTo, s)
		default:
			s.last, s.pending = msg.Position, msg.Position
		}
	}
	return f.sendTo
}

// feedBatches is how many batches of its own events a partition's
// buffer holds.
const feedBatches = 4

// checkpointItem is the item that moves a partition's checkpoint to p.
func checkpointItem(p es.Position) item {
	return item{msg: es.Message{Kind: es.KindCheckpoint, Position: p}}
}

// send gives it to s, and records that s received msg, if not nil. It
// reports false if ctx ended first: s did not get it, and gets it after
// the rewind.
func (f *feed[Tx]) send(ctx context.Context, s *feedSub, it item, msg *es.Message) bool {
	select {
	case s.ch <- it:
		if msg != nil {
			f.received(s, *msg)
		}
	case <-s.ctx.Done():
		// It stops. It must not receive the next messages without this
		// one, were the next send to win its race with ctx.
		f.drop(s)
	case <-ctx.Done():
		return false
	}
	return true
}

// flushOne delivers the pending checkpoint of s if its channel has room.
// f.sending is held: no message of s is being handed out.
func (f *feed[Tx]) flushOne(s *feedSub) {
	f.mu.Lock()
	p := s.pending
	f.mu.Unlock()
	if p.IsZero() {
		return
	}
	select {
	case s.ch <- checkpointItem(p):
		f.mu.Lock()
		if s.pending == p {
			s.pending = es.Position{}
		}
		f.mu.Unlock()
	default:
	}
}

// takePending returns and clears the pending checkpoint of s.
func (f *feed[Tx]) takePending(s *feedSub) es.Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := s.pending
	s.pending = es.Position{}
	return p
}

// flushEvery is how often the feed delivers the checkpoints that only
// move a partition's position: a partition's checkpoint follows the log
// within it (its runner commits such positions within its batch wait).
const flushEvery = 20 * time.Millisecond

// flush delivers the pending checkpoints every flushEvery until ctx ends,
// between two messages of the reader (which holds f.sending while it
// hands one out), so that no checkpoint overtakes an event.
func (f *feed[Tx]) flush(ctx context.Context) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !f.sending.TryLock() {
			continue // a message is being handed out: next time
		}
		f.mu.Lock()
		subs := slices.Clone(f.list)
		f.mu.Unlock()
		for _, s := range subs {
			f.flushOne(s)
		}
		f.sending.Unlock()
	}
}

// drop forgets s, which stopped.
func (f *feed[Tx]) drop(s *feedSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = slices.DeleteFunc(f.list, func(x *feedSub) bool { return x == s })
}

// received records that s received msg.
func (f *feed[Tx]) received(s *feedSub, msg es.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if msg.Kind == es.KindCaughtUp {
		s.live = true
	} else {
		s.last = msg.Position
	}
}

// fail hands err to every subscriber, which ends its follow, and forgets
// them: each subscribes again when its runner restarts.
func (f *feed[Tx]) fail(err error) {
	f.mu.Lock()
	subs := f.list
	f.list = nil
	f.mu.Unlock()
	for _, s := range subs {
		select {
		case s.ch <- item{err: err}:
		case <-s.ctx.Done():
		}
	}
}

// subscribe is the source of partition r's follow (see Runner.readAhead,
// which it stands in for): the feed's messages from the position from.
func (f *feed[Tx]) subscribe(ctx context.Context, r *Runner[Tx], from es.Position) (<-chan item, func()) {
	ctx, cancel := context.WithCancel(ctx)
	// Room for a few batches: while a partition commits, the feed goes
	// on handing out the next events of the log, its own included.
	s := &feedSub{part: r.part.index, ch: make(chan item, min(max(feedBatches*r.cfg.batchSize, minReadAhead), maxReadAhead)),
		ctx: ctx, last: from}
	f.mu.Lock()
	f.list = append(f.list, s)
	f.stale = true
	if f.rewind != nil {
		// Read again from the lowest position: from, if the feed has
		// passed it, or the others' (the tail they share), so that the
		// newcomer gets the caught-up message when the feed reaches the
		// head again.
		f.rewind()
	}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return s.ch, func() {
		cancel()
		f.drop(s)
	}
}
