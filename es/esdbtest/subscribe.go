package esdbtest

import (
	"math"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// subscriptionBatch is how many records a subscription takes from the
	// log per lock.
	subscriptionBatch = 256
	// liveBufferSize is how far a live subscription may lag before it counts
	// as catching up again (and sends another caught-up when it is back).
	liveBufferSize = 512
)

// wait waits for the next write and reports why a subscription
// must end instead, if it must.
func (g *streamsService) wait(call api.Streams_ReadServer, changed <-chan struct{}, dropped <-chan struct{}) error {
	select {
	case <-changed:
		return nil
	case <-call.Context().Done():
		return status.FromContextError(call.Context().Err()).Err()
	case <-dropped:
		return status.Error(codes.Unavailable, "esdbtest: subscription dropped")
	case <-g.srv.done:
		return status.Error(codes.Unavailable, "esdbtest: server shutting down")
	}
}

// ended reports, without waiting, why a subscription must end, if it must:
// checked between batches so that a drop does not wait for a long catch-up.
func (g *streamsService) ended(dropped <-chan struct{}) error {
	select {
	case <-dropped:
		return status.Error(codes.Unavailable, "esdbtest: subscription dropped")
	case <-g.srv.done:
		return status.Error(codes.Unavailable, "esdbtest: server shutting down")
	default:
		return nil
	}
}

// confirm sends the subscription confirmation.
func confirm(call api.Streams_ReadServer) error {
	return call.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{
		Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: uuid.NewString()},
	}})
}

// streamBatch is what a stream subscription gets from the store per step.
type streamBatch struct {
	events    []*record
	tombstone *record
	next      uint64 // revision after the events scanned
	backlog   int    // events after this batch
	changed   <-chan struct{}
}

// streamBatchFrom returns the visible events of a stream from revision next.
func (s *store) streamBatchFrom(name string, next uint64) streamBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := streamBatch{changed: s.changed, next: next}
	st := s.streams[name]
	if st == nil {
		return b
	}
	m := s.metaLocked(name)
	from := max(next, s.firstVisibleLocked(st, m))
	now := s.now()
	r := from
	for ; r < uint64(len(st.events)) && len(b.events) < subscriptionBatch; r++ {
		if rec := st.events[r]; s.visibleLocked(rec, m, now) {
			b.events = append(b.events, rec)
		}
	}
	b.next = max(next, min(r, uint64(len(st.events))))
	if r < uint64(len(st.events)) {
		b.backlog = len(st.events) - int(r)
	} else {
		b.tombstone = st.tombstone
	}
	return b
}

// stillLive reports whether a live subscription stays live with backlog
// records to read; one that falls behind is told so with the message
// fellBehind makes.
func stillLive(call api.Streams_ReadServer, live bool, backlog int, fellBehind func() *api.ReadResp) (bool, error) {
	if !live || backlog <= liveBufferSize {
		return live, nil
	}
	return false, call.Send(fellBehind())
}

// subscribeStream serves a catch-up subscription to one stream.
func (g *streamsService) subscribeStream(p readPlan, call api.Streams_ReadServer) error {
	s := g.srv.store
	dropped := g.srv.dropChannel()
	s.mu.Lock()
	st := s.streams[p.stream]
	if st != nil && st.tombstone != nil {
		s.mu.Unlock()
		return streamDeletedStatus(call.SetTrailer, p.stream)
	}
	next := uint64(0)
	switch p.from {
	case fromEnd:
		next = uint64(st.last() + 1)
	case fromPoint:
		next = p.point + 1
		if p.point == math.MaxUint64 {
			// Revision 2^64-1 is EventStoreDB's end of a stream: the
			// subscription goes live from the end.
			next = uint64(st.last() + 1)
		}
	}
	s.mu.Unlock()
	if err := confirm(call); err != nil {
		return err
	}

	live := false
	for {
		if err := g.ended(dropped); err != nil {
			return err
		}
		b := s.streamBatchFrom(p.stream, next)
		var err error
		if live, err = stillLive(call, live, b.backlog, func() *api.ReadResp { return g.srv.fellBehindStream(int64(next) - 1) }); err != nil {
			return err
		}
		for _, rec := range b.events {
			if err := s.sendRead(call, rec, p); err != nil {
				return err
			}
		}
		next = b.next
		if b.tombstone != nil {
			if err := s.sendRead(call, b.tombstone, p); err != nil {
				return err
			}
			return streamDeletedStatus(call.SetTrailer, p.stream)
		}
		if b.backlog > 0 {
			continue
		}
		if !live {
			if err := call.Send(g.srv.caughtUpStream(int64(next) - 1)); err != nil {
				return err
			}
			live = true
		}
		if len(b.events) > 0 {
			continue // something may have arrived while sending
		}
		if err := g.wait(call, b.changed, dropped); err != nil {
			return err
		}
	}
}

// allBatch is what a `$all` subscription gets from the store per step.
type allBatch struct {
	records []*record
	next    int // log index after the batch
	backlog int
	changed <-chan struct{}
}

// allBatchFrom returns the log records from index i.
func (s *store) allBatchFrom(i int) allBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := min(len(s.log), i+subscriptionBatch)
	b := allBatch{next: end, backlog: len(s.log) - end, changed: s.changed}
	if i < end {
		b.records = append([]*record(nil), s.log[i:end]...)
	}
	return b
}

// subscribeAll serves a catch-up subscription to `$all`, filtered or not.
func (g *streamsService) subscribeAll(p readPlan, call api.Streams_ReadServer) error {
	s := g.srv.store
	dropped := g.srv.dropChannel()
	sc, next := s.startAllScan(p)
	sc.srv = g.srv
	if err := confirm(call); err != nil {
		return err
	}
	live := false
	for {
		if err := g.ended(dropped); err != nil {
			return err
		}
		b := s.allBatchFrom(next)
		next = b.next
		var err error
		if live, err = stillLive(call, live, b.backlog, func() *api.ReadResp { return g.srv.fellBehindAll(sc.cursor) }); err != nil {
			return err
		}
		if err := sc.send(call, s, b.records); err != nil {
			return err
		}
		if b.backlog > 0 {
			continue
		}
		if !live {
			if err := sc.catchUp(call); err != nil {
				return err
			}
			live = true
		}
		if len(b.records) > 0 {
			continue
		}
		if err := g.wait(call, b.changed, dropped); err != nil {
			return err
		}
	}
}

// allScan is where a `$all` subscription stands in the log: what it
// skips, the last record it scanned, and how many it scanned (for the
// filter's checkpoint interval).
type allScan struct {
	p       readPlan
	srv     *Server
	after   uint64 // records at or before this position are not delivered
	cursor  uint64 // position of the last record scanned
	scanned uint64
}

// startAllScan places a `$all` subscription at its start, and returns the
// log index to read from.
func (s *store) startAllScan(p readPlan) (*allScan, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var after uint64
	switch p.from {
	case fromEnd:
		after = s.headLocked()
	case fromPoint:
		after = p.point
	}
	next := s.indexAfterLocked(after)
	if p.from == fromStart {
		next = 0
	}
	return &allScan{p: p, after: after, cursor: after}, next
}

// send sends the records of a batch that pass the filter, and a checkpoint
// after every interval of scanned records when the subscription filters.
func (sc *allScan) send(call api.Streams_ReadServer, s *store, records []*record) error {
	for _, rec := range records {
		if sc.p.from != fromStart && rec.position <= sc.after {
			continue
		}
		sc.cursor = rec.position
		sc.scanned++
		if sc.p.filter.match(rec) {
			if err := s.sendRead(call, rec, sc.p); err != nil {
				return err
			}
		}
		if sc.p.filter != nil && sc.scanned%sc.p.filter.interval == 0 {
			if err := sc.checkpoint(call); err != nil {
				return err
			}
		}
	}
	return nil
}

// catchUp tells the subscriber that it reached the head of the log,
// after a checkpoint at the last record scanned when it filters.
func (sc *allScan) catchUp(call api.Streams_ReadServer) error {
	if sc.p.filter != nil {
		if err := sc.checkpoint(call); err != nil {
			return err
		}
	}
	return call.Send(sc.srv.caughtUpAll(sc.cursor))
}

// checkpoint sends the position of the last record scanned.
func (sc *allScan) checkpoint(call api.Streams_ReadServer) error {
	return call.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
		CommitPosition: sc.cursor, PreparePosition: sc.cursor,
	}}})
}

// streamNotFound is the read response for a missing stream.
func streamNotFound(name string) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
	}}}
}
