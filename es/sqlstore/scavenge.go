package sqlstore

import (
	"context"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
)

// Scavenging: see "Retention" in the package documentation.

const (
	// scavengeRows bounds the events one scavenging transaction deletes.
	scavengeRows = 1000
	// scavengeStreams bounds the streams one scavenging transaction
	// visits.
	scavengeStreams = 32
	// scavengePage is the number of candidate streams read per query,
	// outside any transaction.
	scavengePage = 256
)

// ScavengeResult reports what [Store.Scavenge] did.
type ScavengeResult struct {
	// Deleted is the number of events deleted.
	Deleted int64
	// Streams is the number of streams visited: those that can have
	// events to delete (streams with metadata, tombstoned streams and
	// metadata streams with more than one event).
	Streams int64
	// Horizon is the position below which events were deleted: the
	// horizon passed to Scavenge, lowered to the head of the log as it was
	// when the scavenge started. Events at Horizon and after were kept.
	Horizon es.Position
}

// Scavenge deletes, from the events table, the events that no read of
// their stream can return any more and that lie at positions strictly below
// the horizon below, as EventStoreDB's scavenge does. below is the lowest
// position that a consumer of `$all` still needs to receive, or has
// received last (the lowest checkpoint of the live subscribers of `$all`):
// an event at below or after it is never deleted, so that a subscription
// that has not reached an event still receives it. [es.Start] deletes
// nothing; [es.End] lets every position up to the head of the log go.
//
// An event goes when its stream's metadata cuts it away (`$maxCount`,
// `$tb`, `$maxAge` by the store's clock, see [WithClock]), when its stream
// is soft-deleted, when it is an older event of a metadata stream (which
// keeps its newest), or when its stream is tombstoned. Kept always: the
// last event of every stream that is not tombstoned (so that the stream's
// last revision, and the position an empty append reports, stay known) and
// the `$streamDeleted` record of a tombstoned stream. Stream rows are never
// deleted: revisions continue after a scavenge, and a soft-deleted stream is
// recreated as before.
//
// Deleting is final: a change of metadata that would bring events back
// (a lower `$tb`, a larger `$maxCount` or `$maxAge`, or none) shows only
// the events that were not yet scavenged. `$all` reads and subscriptions
// from a position below the horizon skip the deleted events. See
// "Retention" in the package documentation for idempotent appends.
//
// Scavenge works in short transactions, each deleting at most 1000 events
// or visiting at most 32 streams, serialised with appends (it takes the
// store's write lock, so an append waits for one such transaction at
// most), and decides what to delete inside each transaction from the
// stream's state as it then is. It can run while the store is in use, in
// several processes at once, and be stopped at any time through ctx: what
// it deleted stays deleted, and running it again finishes the work (it is
// idempotent). Appends made while it runs are not considered. On error,
// the result counts what was deleted before it.
func (s *Store) Scavenge(ctx context.Context, below es.Position) (ScavengeResult, error) {
	var res ScavengeResult
	if err := s.usable(ctx); err != nil {
		return res, err
	}
	const op = "scavenge"
	head, err := s.queryHead(ctx)
	if err != nil {
		return res, s.opError(ctx, op, err)
	}
	// Positions are one number: Commit and Prepare are equal.
	h := min(below.Commit, head)
	res.Horizon = es.Position{Commit: h, Prepare: h}
	if h <= 1 {
		return res, nil
	}
	page, perTx := orDefault(s.cfg.scavengePage, scavengePage), orDefault(s.cfg.scavengeStreams, scavengeStreams)
	after := "" // the name of the last candidate read
	for {
		names, err := s.scavengeCandidates(ctx, after, page)
		if err != nil {
			return res, s.opError(ctx, op, err)
		}
		for i := 0; i < len(names); {
			if err := s.usable(ctx); err != nil {
				return res, err
			}
			visited, deleted, err := s.scavengeBatch(ctx, names[i:min(len(names), i+perTx)], h)
			res.Deleted += deleted
			res.Streams += int64(visited)
			if err != nil {
				return res, s.opError(ctx, op, err)
			}
			i += visited
		}
		if len(names) < page {
			return res, nil
		}
		after = names[len(names)-1]
	}
}

// scavengeCandidates reads, outside any transaction, the names of the next
// streams after the name after that can have events to delete.
func (s *Store) scavengeCandidates(ctx context.Context, after string, page int) ([]string, error) {
	r, err := s.db.Reader().Query(ctx, s.q.scavengeCandidates, after, esdriver.MetadataStreamPrefix+"%", int64(page))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var names []string
	for r.Next() {
		var name string
		if err := r.Scan(&name); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, r.Err()
}

// scavengeBatch scavenges streams, in order, in one transaction, until it
// deleted scavengeRows events. It returns the number of streams that it
// finished, the events it deleted, and the transaction's error (then
// nothing was deleted). A stream that was not finished is visited again by
// the next batch.
func (s *Store) scavengeBatch(ctx context.Context, names []string, horizon uint64) (int, int64, error) {
	var (
		visited int
		deleted int64
	)
	// Each transaction is a call into the database, bounded by the call
	// timeout.
	err := s.call(ctx, func(ctx context.Context) error {
		return s.db.Write(ctx, func(tx querier) error {
			visited, deleted = 0, 0
			now := s.cfg.now()
			budget := int64(orDefault(s.cfg.scavengeRows, scavengeRows))
			for _, name := range names {
				st, err := s.loadStream(ctx, tx, name)
				if err != nil {
					return err
				}
				c := scavengeCut(name, st, now)
				if c.below > 0 {
					n, err := countRows(ctx, tx, s.q.scavengeBelow, name, i64(c.below), i64(horizon), budget)
					if err != nil {
						return err
					}
					deleted, budget = deleted+n, budget-n
				}
				if c.ageBelow > 0 && budget > 0 {
					n, err := countRows(ctx, tx, s.q.scavengeAged, name, i64(c.ageBelow), c.cutoff, i64(horizon), budget)
					if err != nil {
						return err
					}
					deleted, budget = deleted+n, budget-n
				}
				if budget == 0 {
					return nil // the stream may have more: the next batch visits it again
				}
				visited++
			}
			return nil
		})
	})
	if err != nil {
		return 0, 0, err
	}
	return visited, deleted, nil
}

func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

// countRows runs a statement that returns rows, and counts them.
func countRows(ctx context.Context, q queryer, sql string, args ...any) (int64, error) {
	r, err := q.Query(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var n int64
	for r.Next() {
		n++
	}
	return n, r.Err()
}

// cut is what a scavenge may delete of a stream: the events at revisions
// below below, and those at revisions below ageBelow created at or before
// cutoff (Unix nanoseconds). Zero bounds delete nothing.
type cut struct {
	below    uint64
	ageBelow uint64
	cutoff   int64
}

// scavengeCut returns what a scavenge may delete of stream name, whose
// state is st, at time now: exactly the events that no read of the stream
// returns, except the stream's last event; all but the tombstone record of
// a tombstoned stream.
func scavengeCut(name string, st streamState, now time.Time) cut {
	switch {
	case !st.found:
		return cut{}
	case st.tombstoned:
		return cut{below: esdriver.TombstoneRevision}
	case st.last < 1:
		return cut{} // no event, or only the last one
	}
	last := uint64(st.last)
	meta := st.meta
	if _, ok := esdriver.MetadataTarget(name); ok {
		meta = es.StreamMetadata{MaxCount: 1} // as ReadStream applies
	}
	c := cut{below: min(esdriver.FirstRetained(meta, last), last)}
	if meta.MaxAge > 0 {
		// Retains keeps an event created after now - $maxAge.
		c.ageBelow, c.cutoff = last, now.Add(-meta.MaxAge).UnixNano()
	}
	return c
}

// startScavenger starts the background scavenger if [WithScavenge] asked
// for one, once the store is ready for writes: like the store's other
// background goroutines, it lives until Close.
func (s *Store) startScavenger(ctx context.Context) {
	if !s.cfg.scavengeSet {
		return
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := s.cancel
	s.cancel = func() { cancel(); stop() }
	s.wg.Go(func() { s.scavenger(bg) })
}

// scavenger scavenges every s.cfg.scavengeEvery until ctx is done, below
// the horizon that s.cfg.scavengeHorizon returns each time. It logs its
// errors (warnings) and tries again at the next tick, and each pass done
// (debug).
func (s *Store) scavenger(ctx context.Context) {
	log := s.cfg.logger
	for sleep(ctx, s.cfg.scavengeEvery) {
		below, err := s.cfg.scavengeHorizon(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.WarnContext(ctx, "sqlstore: scavenge: the horizon", "error", err, "retry", s.cfg.scavengeEvery)
			}
			continue
		}
		start := time.Now()
		res, err := s.Scavenge(ctx, below)
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "sqlstore: scavenge", "error", err, "deleted", res.Deleted, "retry", s.cfg.scavengeEvery)
		case err == nil:
			log.DebugContext(ctx, "sqlstore: scavenged", "deleted", res.Deleted, "streams", res.Streams,
				"horizon", res.Horizon, "duration", time.Since(start))
		}
	}
}
