package esdbtest

import (
	"errors"
	"io"
	"slices"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Read implements PersistentSubscriptions.Read: options first, then acks
// and nacks from the consumer while events flow to it.
func (p *persistentService) Read(call persistent.PersistentSubscriptions_ReadServer) error {
	req, err := readRequest(call)
	if err != nil || req == nil {
		return err // nil: nothing asked, nothing to do
	}
	c := &psConsumer{bufferSize: req.bufferSize, stop: make(chan struct{})}
	if pr, ok := peer.FromContext(call.Context()); ok {
		c.from = pr.Addr.String()
	}
	if md, ok := metadata.FromIncomingContext(call.Context()); ok {
		if names := md.Get(headerConnectionName); len(names) > 0 {
			c.name = names[0]
		}
	}
	c.user = callUser(call.Context())
	g, err := p.join(call, req.key, c)
	if err != nil {
		return err
	}
	defer p.removeConsumer(g, c)

	if err := call.Send(&persistent.ReadResp{Content: &persistent.ReadResp_SubscriptionConfirmation_{
		SubscriptionConfirmation: &persistent.ReadResp_SubscriptionConfirmation{SubscriptionId: req.key.stream + "::" + req.key.group},
	}}); err != nil {
		return err
	}

	// The receiving goroutine ends when the call does; the server waits
	// for it on Close.
	acks := make(chan error, 1)
	p.srv.workers.Add(1)
	go func() {
		defer p.srv.workers.Done()
		acks <- p.receive(call, g, c)
	}()
	return p.deliver(call, g, c, req.stringIDs, acks)
}

// psReadRequest is the validated options message of a persistent
// subscription's Read call.
type psReadRequest struct {
	key        psKey
	bufferSize int
	stringIDs  bool
}

// readRequest receives and validates the options that open a Read call. It
// returns nil and no error when the client ended the call before sending
// anything.
func readRequest(call persistent.PersistentSubscriptions_ReadServer) (*psReadRequest, error) {
	first, err := call.Recv()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, recvError(err)
	}
	opts := first.GetOptions()
	if opts == nil {
		return nil, invalidArgument("the first read message must carry the options")
	}
	_, all := opts.GetStreamOption().(*persistent.ReadReq_Options_All)
	name, err := psStream(opts.GetStreamIdentifier(), all)
	if err != nil {
		return nil, err
	}
	k := psKey{stream: name, group: opts.GetGroupName()}
	if k.group == "" {
		return nil, invalidArgument("group name must not be empty")
	}
	if opts.GetBufferSize() <= 0 {
		return nil, invalidArgument("buffer size must be greater than zero")
	}
	_, stringIDs := opts.GetUuidOption().GetContent().(*persistent.ReadReq_Options_UUIDOption_String_)
	return &psReadRequest{key: k, bufferSize: int(opts.GetBufferSize()), stringIDs: stringIDs}, nil
}

// join adds a consumer to the group k: NotFound if there is no such group,
// FailedPrecondition if the group has its maximum of consumers.
func (p *persistentService) join(call persistent.PersistentSubscriptions_ReadServer, k psKey, c *psConsumer) (*psGroup, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[k]
	if g == nil {
		return nil, psNotFound(call.SetTrailer, k)
	}
	if most := g.settings.maxSubscriberCount; most > 0 && len(g.consumers) >= int(most) {
		call.SetTrailer(metadata.Pairs(trailerException, exceptionPSMaxConsumers, trailerStreamName, k.stream, trailerGroupName, k.group))
		return nil, status.Errorf(codes.FailedPrecondition, "Maximum subscriptions reached for subscription group %s on stream %s.", k.group, k.stream)
	}
	g.consumers = append(g.consumers, c)
	return g, nil
}

// deliver sends a consumer the messages dispatched to it until the call
// ends: acks reports the end of the receiving side.
func (p *persistentService) deliver(call persistent.PersistentSubscriptions_ReadServer, g *psGroup, c *psConsumer, stringIDs bool, acks <-chan error) error {
	dropped := p.srv.dropChannel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b := p.next(g, c)
		for _, m := range b.msgs {
			if err := call.Send(p.readEvent(m, b.resolve, g.all, stringIDs)); err != nil {
				return err
			}
		}
		if end, err := p.await(call, c, b, timer, acks, dropped); end {
			return err
		}
	}
}

// await waits until there may be more to deliver: a change of the group or
// the store, or a message timing out at b.wake. It returns end true, with
// the call's result, when the consumer must stop instead. The timer is
// stopped and drained when await returns.
func (p *persistentService) await(call persistent.PersistentSubscriptions_ReadServer, c *psConsumer, b psBatch, timer *time.Timer, acks <-chan error, dropped <-chan struct{}) (end bool, err error) {
	var timeout <-chan time.Time
	if !b.wake.IsZero() {
		timer.Reset(time.Until(b.wake))
		timeout = timer.C
	}
	defer func() {
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}()
	select {
	case <-b.changed:
	case <-b.written:
	case <-timeout:
	case received := <-acks:
		if errors.Is(received, io.EOF) {
			return true, nil
		}
		return true, received
	case <-c.stop:
		if c.stopTrailer != nil {
			call.SetTrailer(c.stopTrailer)
		}
		return true, c.stopErr
	case <-call.Context().Done():
		return true, status.FromContextError(call.Context().Err()).Err()
	case <-dropped:
		return true, status.Error(codes.Unavailable, "esdbtest: subscription dropped")
	case <-p.srv.done:
		return true, status.Error(codes.Unavailable, "esdbtest: server shutting down")
	}
	return false, nil
}

// receive applies the acks and nacks of a consumer until its call ends.
func (p *persistentService) receive(call persistent.PersistentSubscriptions_ReadServer, g *psGroup, c *psConsumer) error {
	for {
		req, err := call.Recv()
		if err != nil {
			return err
		}
		switch v := req.GetContent().(type) {
		case *persistent.ReadReq_Ack_:
			p.settle(g, c, v.Ack.GetIds(), persistent.ReadReq_Nack_Unknown, true)
		case *persistent.ReadReq_Nack_:
			p.settle(g, c, v.Nack.GetIds(), v.Nack.GetAction(), false)
		default:
			return invalidArgument("expected an ack or a nack")
		}
	}
}

// settle acknowledges (ack) or rejects (nack with action) messages.
func (p *persistentService) settle(g *psGroup, c *psConsumer, ids []*shared.UUID, action persistent.ReadReq_Nack_Action, ack bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, wire := range ids {
		id, err := parseUUID(wire)
		if err != nil {
			continue
		}
		i := slices.IndexFunc(g.inflight, func(m *psMessage) bool { return m.rec.id == id && m.owner == c })
		if i < 0 {
			i = slices.IndexFunc(g.inflight, func(m *psMessage) bool { return m.rec.id == id })
		}
		if i < 0 {
			continue
		}
		m := g.inflight[i]
		g.inflight = slices.Delete(g.inflight, i, i+1)
		if ack && g.settings.extraStatistics {
			m.owner.latencies.add(time.Since(m.sent))
		}
		m.owner.inflight--
		m.owner = nil
		switch {
		case ack || action == persistent.ReadReq_Nack_Skip:
			p.settleLocked(g, m)
		case action == persistent.ReadReq_Nack_Park:
			p.parkLocked(g, m)
		case action == persistent.ReadReq_Nack_Stop:
			p.retryLocked(g, m)
			c.end(psDropped(g.key))
		default: // Retry, Unknown
			p.retryLocked(g, m)
		}
	}
	p.notifyLocked()
}

// retryLocked queues a message for another delivery, or parks it once it
// was retried maxRetryCount times. It writes to the store: the caller must
// not hold the store's lock.
func (p *persistentService) retryLocked(g *psGroup, m *psMessage) {
	m.owner, m.deadline = nil, time.Time{}
	if m.retry >= g.settings.maxRetryCount {
		p.parkLocked(g, m)
		return
	}
	m.retry++
	g.retry = append(g.retry, m)
}

// removeConsumer takes a consumer out of its group and queues its
// unacknowledged messages again: the ones it never sent first, as they
// were, then the ones it sent, as retries.
func (p *persistentService) removeConsumer(g *psGroup, c *psConsumer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g.consumers = slices.DeleteFunc(g.consumers, func(x *psConsumer) bool { return x == c })
	var kept []*psMessage
	for _, m := range g.inflight {
		switch {
		case m.owner != c:
			kept = append(kept, m)
		case slices.Contains(c.outbox, m):
		default:
			p.retryLocked(g, m)
		}
	}
	g.inflight = kept
	g.releaseBuckets(c)
	for _, m := range c.outbox {
		m.owner, m.deadline = nil, time.Time{}
	}
	g.retry = append(c.outbox, g.retry...)
	c.outbox = nil
	p.notifyLocked()
}

// psBatch is what a consumer gets per step: messages to send, when the
// next message times out, and the channels that signal changes.
type psBatch struct {
	msgs    []*psMessage
	resolve bool
	wake    time.Time
	changed <-chan struct{}
	written <-chan struct{}
}

// next expires timed-out messages, dispatches what is ready to the group's
// consumers, and hands this consumer the messages dispatched to it.
func (p *persistentService) next(g *psGroup, c *psConsumer) psBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var kept []*psMessage
	for _, m := range g.inflight {
		if !m.deadline.IsZero() && !now.Before(m.deadline) && !slices.Contains(m.owner.outbox, m) {
			m.owner.inflight--
			p.retryLocked(g, m)
			continue
		}
		kept = append(kept, m)
	}
	g.inflight = kept

	s := p.srv.store
	s.mu.Lock()
	assigned := g.dispatchLocked(s, now)
	written := s.changed
	s.mu.Unlock()

	out := c.outbox
	c.outbox = nil
	if assigned > len(out) {
		p.notifyLocked() // other consumers have messages waiting
	}
	var wake time.Time
	for _, m := range g.inflight {
		if !m.deadline.IsZero() && (wake.IsZero() || m.deadline.Before(wake)) {
			wake = m.deadline
		}
	}
	return psBatch{msgs: out, resolve: g.settings.resolveLinks, wake: wake, changed: p.changed, written: written}
}

// dispatchLocked hands ready messages, retries first, then new records, to
// consumers with free slots, chosen by the group's consumer strategy. It
// returns how many it handed out. Needs the store's lock.
func (g *psGroup) dispatchLocked(s *store, now time.Time) int {
	assigned := 0
	for slices.ContainsFunc(g.consumers, (*psConsumer).free) {
		m := g.readyLocked(s)
		if m == nil {
			break
		}
		c := g.pickLocked(s, m)
		if c == nil {
			break // the pinned consumer is full: the message waits for it
		}
		if len(g.retry) > 0 && g.retry[0] == m {
			g.retry = g.retry[1:]
		} else {
			g.peeked = nil
		}
		m.owner, m.sent = c, now
		c.inflight++
		c.delivered++
		g.delivered++
		if g.settings.messageTimeout > 0 {
			m.deadline = now.Add(g.settings.messageTimeout)
		}
		g.inflight = append(g.inflight, m)
		c.outbox = append(c.outbox, m)
		assigned++
	}
	return assigned
}

// readyLocked returns the next message to dispatch without taking it: the
// first retry, or the next record of the source. Needs the store's lock.
func (g *psGroup) readyLocked(s *store) *psMessage {
	if len(g.retry) > 0 {
		return g.retry[0]
	}
	if g.peeked == nil {
		recs := g.pullLocked(s, 1)
		if len(recs) == 0 {
			return nil
		}
		g.peeked = &psMessage{rec: recs[0]}
		g.pending = append(g.pending, g.peeked)
		if g.lastKnown == nil || recs[0].position > g.lastKnown.position {
			g.lastKnown = recs[0]
		}
	}
	return g.peeked
}

// pickLocked chooses the consumer of a message: round robin over the
// consumers with free slots, the first one with free slots for
// DispatchToSingle, or the one its key's bucket is assigned to for Pinned
// and PinnedByCorrelation (nil if that one is full). Needs the store's
// lock.
func (g *psGroup) pickLocked(s *store, m *psMessage) *psConsumer {
	n := len(g.consumers)
	switch g.settings.strategy {
	case strategyDispatchToSingle:
		for _, c := range g.consumers {
			if c.free() {
				return c
			}
		}
	case strategyPinned, strategyPinnedByCorr:
		return g.pinnedLocked(s, m)
	default:
		for i := range n {
			if c := g.consumers[(g.rr+i)%n]; c.free() {
				g.rr = (g.rr + i + 1) % n
				return c
			}
		}
	}
	return nil
}

// pullLocked reads up to n new records from the group's source. Needs the
// store's lock.
func (g *psGroup) pullLocked(s *store, n int) []*record {
	var out []*record
	if g.all {
		for ; n > len(out) && g.nextIdx < len(s.log); g.nextIdx++ {
			rec := s.log[g.nextIdx]
			if rec.position >= g.minPos && !psOwnAllStream(rec) && g.filter.match(rec) {
				out = append(out, rec)
			}
		}
		return out
	}
	st := s.streams[g.key.stream]
	if st == nil || n <= 0 {
		return nil
	}
	m := s.metaLocked(g.key.stream)
	r := max(g.nextRev, s.firstVisibleLocked(st, m))
	now := s.now()
	for ; n > len(out) && r < uint64(len(st.events)); r++ {
		if rec := st.events[r]; s.visibleLocked(rec, m, now) {
			out = append(out, rec)
		}
	}
	g.nextRev = max(g.nextRev, min(r, uint64(len(st.events))))
	return out
}

// readEvent builds the wire form of a delivered message.
func (p *persistentService) readEvent(m *psMessage, resolve, all, stringIDs bool) *persistent.ReadResp {
	ev := &persistent.ReadResp_ReadEvent{
		Event:    persistentRecordedEvent(m.rec, stringIDs),
		Position: &persistent.ReadResp_ReadEvent_NoPosition{NoPosition: &shared.Empty{}},
		Count:    &persistent.ReadResp_ReadEvent_RetryCount{RetryCount: m.retry},
	}
	if all {
		ev.Position = &persistent.ReadResp_ReadEvent_CommitPosition{CommitPosition: m.rec.position}
	}
	if resolve && m.rec.eventType == linkEventType {
		ev.Link, ev.Event = ev.Event, nil
		if target := p.srv.store.resolveLink(m.rec); target != nil {
			ev.Event = persistentRecordedEvent(target, stringIDs)
		}
	}
	return &persistent.ReadResp{Content: &persistent.ReadResp_Event{Event: ev}}
}

// persistentRecordedEvent is the wire form of a record in a persistent
// subscription.
func persistentRecordedEvent(rec *record, stringIDs bool) *persistent.ReadResp_ReadEvent_RecordedEvent {
	e := recordedEvent(rec, stringIDs)
	return &persistent.ReadResp_ReadEvent_RecordedEvent{
		Id:               e.Id,
		StreamIdentifier: e.StreamIdentifier,
		StreamRevision:   e.StreamRevision,
		PreparePosition:  e.PreparePosition,
		CommitPosition:   e.CommitPosition,
		Metadata:         e.Metadata,
		CustomMetadata:   e.CustomMetadata,
		Data:             e.Data,
	}
}
