package esdriver

import (
	"context"
	"iter"
	"time"

	"github.com/eventfold/eventfold/es"
)

// Log is a store's log as the subscription loops of [SubscribeAll] and
// [SubscribeStream] read it: pages of events, and a signal when it changes.
// The loops hold nothing of the store (no lock, no connection) between
// their calls, and keep no page after asking for the next, so that a Log
// made for one subscription may reuse its slices.
type Log interface {
	// Changed returns a channel that is closed when the log changes after
	// the call: an append, a delete, or the store closing (whose next read
	// then fails). The loops take it before they read a page, so that a
	// change during the read is not missed.
	Changed() <-chan struct{}
	// Head returns the position of the last event of `$all`, [es.Start] if
	// there is none.
	Head(ctx context.Context) (es.Position, error)
	// ReadAllAfter returns the events of `$all` after position after, in
	// order: a page of the store's size. more reports that the page is full,
	// so that more events may follow at once.
	ReadAllAfter(ctx context.Context, after es.Position) (page []es.RecordedEvent, more bool, err error)
	// ReadStreamFrom returns the state of the stream name and its events
	// from revision from on, in order, a page of the store's size, read
	// after the state (so that the metadata applied is at least as new as
	// the events). more reports a full page. The tombstone record of a
	// tombstoned stream is not among the events but in StreamPage.Tombstone.
	// from may be past the stream's end: [es.StreamEnd] reads its state.
	ReadStreamFrom(ctx context.Context, name string, from uint64) (page StreamPage, more bool, err error)
	// Now is the store's clock, for `$maxAge`.
	Now() time.Time
}

// StreamPage is a page of a stream, as [Log.ReadStreamFrom] reads it.
type StreamPage struct {
	Stream
	// Events are the stream's events from the revision asked for on.
	Events []es.RecordedEvent
	// Tombstone is the tombstone record of a tombstoned stream.
	Tombstone *es.RecordedEvent
}

// SubscribeAll is [es.Store.SubscribeAll] on log: it reads `$all` page by
// page after opts.From, filtered in this process, with the checkpoints of a
// filtered subscription and [es.KindCaughtUp] once, then waits for the log
// to change. It ends with ctx's error when ctx ends, or with the error of a
// read.
func SubscribeAll(ctx context.Context, log Log, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		match, err := Matcher(opts.Filter)
		if err != nil {
			yield(es.Message{}, err)
			return
		}
		after := opts.From
		if after == es.End {
			if after, err = log.Head(ctx); err != nil {
				yield(es.Message{}, err)
				return
			}
		}
		f := allFeed{log: log, match: match, interval: uint64(CheckpointInterval(opts.Filter)), after: after, checkpoint: after}
		f.run(ctx, yield)
	}
}

// allFeed is the state of a subscription to `$all`.
type allFeed struct {
	log        Log
	match      func(es.RecordedEvent) bool
	interval   uint64 // events scanned between checkpoints; 0 for none
	after      es.Position
	checkpoint es.Position // the last position scanned
	scanned    uint64
}

func (f *allFeed) run(ctx context.Context, yield func(es.Message, error) bool) {
	caughtUp := false
	for {
		if err := ctx.Err(); err != nil {
			yield(es.Message{}, err)
			return
		}
		changed := f.log.Changed()
		page, more, err := f.log.ReadAllAfter(ctx, f.after)
		if err != nil {
			yield(es.Message{}, err)
			return
		}
		if !f.deliver(page, yield) {
			return
		}
		if more {
			continue
		}
		if !caughtUp {
			caughtUp = true
			if f.interval > 0 && !yield(es.Message{Kind: es.KindCheckpoint, Position: f.checkpoint}, nil) {
				return
			}
			if !yield(es.Message{Kind: es.KindCaughtUp, Position: f.checkpoint}, nil) {
				return
			}
		}
		if !wait(ctx, changed, yield) {
			return
		}
	}
}

// deliver yields the events of page that match, and the checkpoints due;
// false if the consumer stopped.
func (f *allFeed) deliver(page []es.RecordedEvent, yield func(es.Message, error) bool) bool {
	for _, ev := range page {
		f.after, f.checkpoint = ev.Position, ev.Position
		f.scanned++
		if f.match(ev) && !yield(es.Message{Kind: es.KindEvent, Event: ev, Position: ev.Position}, nil) {
			return false
		}
		if f.interval > 0 && f.scanned%f.interval == 0 && !yield(es.Message{Kind: es.KindCheckpoint, Position: ev.Position}, nil) {
			return false
		}
	}
	return true
}

// SubscribeStream is [es.Store.SubscribeStream] on log: it reads the stream
// page by page from opts.From, enforcing its metadata ([Retains]), with
// [es.KindCaughtUp] once, then waits for the log to change. A tombstone is
// delivered once the subscription reached the stream's end, and ends it
// with [StreamDeleted]; so does subscribing to a tombstoned stream. It ends
// with ctx's error when ctx ends, or with the error of a read.
func SubscribeStream(ctx context.Context, log Log, name string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return func(yield func(es.Message, error) bool) {
		if err := es.ValidateStreamName(name); err != nil {
			yield(es.Message{}, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(es.Message{}, err)
			return
		}
		next := uint64(0)
		if rev, ok := opts.From.Revision(); ok {
			next = rev + 1
		}
		start, _, err := log.ReadStreamFrom(ctx, name, es.StreamEnd)
		switch {
		case err != nil:
			yield(es.Message{}, err)
			return
		case start.Tombstoned:
			yield(es.Message{}, StreamDeleted(name))
			return
		case opts.From.IsEnd():
			next = uint64(start.Last + 1)
		}
		runStream(ctx, log, name, next, yield)
	}
}

// runStream is the loop of SubscribeStream from revision next on.
func runStream(ctx context.Context, log Log, name string, next uint64, yield func(es.Message, error) bool) {
	caughtUp := false
	for {
		if err := ctx.Err(); err != nil {
			yield(es.Message{}, err)
			return
		}
		changed := log.Changed()
		page, more, err := log.ReadStreamFrom(ctx, name, next)
		if err != nil {
			yield(es.Message{}, err)
			return
		}
		now := log.Now()
		for _, ev := range page.Events {
			next = ev.Revision + 1
			if Retains(page.Metadata, ev.Revision, uint64(page.Last), ev.Created, now) &&
				!yield(es.Message{Kind: es.KindEvent, Event: ev, Position: ev.Position}, nil) {
				return
			}
		}
		// A subscription that started after the end never reaches the
		// tombstone; one that is behind does, even if the events it has
		// not seen are gone (scavenged).
		if t := page.Tombstone; t != nil && !more && next <= uint64(page.Last+1) {
			if yield(es.Message{Kind: es.KindEvent, Event: *t, Position: t.Position}, nil) {
				yield(es.Message{}, StreamDeleted(name))
			}
			return
		}
		if more {
			continue
		}
		if !caughtUp {
			caughtUp = true
			if !yield(es.Message{Kind: es.KindCaughtUp}, nil) {
				return
			}
		}
		if !wait(ctx, changed, yield) {
			return
		}
	}
}

// wait waits for changed, or yields ctx's error when ctx ends first.
func wait(ctx context.Context, changed <-chan struct{}, yield func(es.Message, error) bool) bool {
	select {
	case <-ctx.Done():
		yield(es.Message{}, ctx.Err())
		return false
	case <-changed:
		return true
	}
}
