package esdbtest

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// linkEventType is the type of a link event: its data is "revision@stream".
const linkEventType = "$>"

// fromKind is where a read or subscription starts.
type fromKind int

const (
	fromStart fromKind = iota
	fromEnd
	fromPoint // a revision or a position
)

// readPlan is a validated ReadReq.
type readPlan struct {
	all       bool
	stream    string
	from      fromKind
	point     uint64 // revision of a stream read, commit position of $all
	forwards  bool
	count     uint64
	subscribe bool
	filter    *filter
	stringIDs bool
	resolve   bool
	// positions: events of a stream carry their commit position (servers
	// from 22.6.0 on); events of `$all` always do.
	positions bool
}

// parseRead validates a ReadReq the way EventStoreDB does: every oneof must
// be set to a known case.
func parseRead(req *api.ReadReq) (readPlan, error) {
	opts := req.GetOptions()
	if opts == nil {
		return readPlan{}, invalidArgument("read options are missing")
	}
	var p readPlan
	var err error
	switch v := opts.GetStreamOption().(type) {
	case *api.ReadReq_Options_Stream:
		err = p.parseStreamSource(v.Stream)
	case *api.ReadReq_Options_All:
		err = p.parseAllSource(v.All)
	default:
		err = invalidArgument("stream option is missing")
	}
	if err != nil {
		return readPlan{}, err
	}
	if err := p.parseDirectionAndCount(opts); err != nil {
		return readPlan{}, err
	}
	if err := p.parseFilterAndUUID(opts); err != nil {
		return readPlan{}, err
	}
	p.resolve = opts.GetResolveLinks()
	return p, nil
}

// parseStreamSource sets the stream and the start of a read of one stream.
func (p *readPlan) parseStreamSource(so *api.ReadReq_Options_StreamOptions) error {
	name, err := streamName(so.GetStreamIdentifier())
	if err != nil {
		return err
	}
	p.stream = name
	switch r := so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Start:
		p.from = fromStart
	case *api.ReadReq_Options_StreamOptions_End:
		p.from = fromEnd
	case *api.ReadReq_Options_StreamOptions_Revision:
		p.from, p.point = fromPoint, r.Revision
	default:
		return invalidArgument("stream revision option is missing")
	}
	return nil
}

// parseAllSource sets the start of a read of `$all`; a position must not
// have its commit part before its prepare part.
func (p *readPlan) parseAllSource(ao *api.ReadReq_Options_AllOptions) error {
	p.all = true
	switch r := ao.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		p.from = fromStart
	case *api.ReadReq_Options_AllOptions_End:
		p.from = fromEnd
	case *api.ReadReq_Options_AllOptions_Position:
		if r.Position == nil {
			return invalidArgument("position is missing")
		}
		if r.Position.CommitPosition < r.Position.PreparePosition {
			return invalidArgument("commit position %d is before prepare position %d",
				r.Position.CommitPosition, r.Position.PreparePosition)
		}
		p.from, p.point = fromPoint, r.Position.CommitPosition
	default:
		return invalidArgument("$all position option is missing")
	}
	return nil
}

// parseDirectionAndCount sets the direction and either the count of a read
// or that it is a subscription, which reads forwards only.
func (p *readPlan) parseDirectionAndCount(opts *api.ReadReq_Options) error {
	switch opts.GetReadDirection() {
	case api.ReadReq_Options_Forwards:
		p.forwards = true
	case api.ReadReq_Options_Backwards:
	default:
		return invalidArgument("unknown read direction %d", opts.GetReadDirection())
	}
	switch c := opts.GetCountOption().(type) {
	case *api.ReadReq_Options_Count:
		if c.Count == 0 {
			return invalidArgument("count must be greater than zero")
		}
		p.count = c.Count
	case *api.ReadReq_Options_Subscription:
		if !p.forwards {
			return invalidArgument("subscriptions read forwards only")
		}
		p.subscribe = true
	default:
		return invalidArgument("count option is missing")
	}
	return nil
}

// parseFilterAndUUID sets the filter (of `$all` only) and the form of the
// event IDs in responses; both options must be present.
func (p *readPlan) parseFilterAndUUID(opts *api.ReadReq_Options) error {
	if opts.GetFilterOption() == nil {
		return invalidArgument("filter option is missing: send a filter or no_filter")
	}
	if opts.GetUuidOption() == nil {
		return invalidArgument("uuid option is missing")
	}
	f, err := parseFilter(opts)
	if err != nil {
		return err
	}
	if f != nil && !p.all {
		return invalidArgument("filters apply to $all only")
	}
	p.filter = f
	if _, ok := opts.GetUuidOption().GetContent().(*api.ReadReq_Options_UUIDOption_String_); ok {
		p.stringIDs = true
	}
	return nil
}

// Read implements the Streams.Read call: reads and subscriptions.
func (g *streamsService) Read(req *api.ReadReq, call api.Streams_ReadServer) error {
	p, err := parseRead(req)
	if err != nil {
		return err
	}
	p.positions = p.all || g.srv.cfg.versionAtLeast(22, 6)
	if p.all && p.from == fromPoint && !g.srv.store.validPosition(p.point) {
		return invalidArgument("Trying to read from an invalid position.")
	}
	switch {
	case p.subscribe && p.all:
		return g.subscribeAll(p, call)
	case p.subscribe:
		return g.subscribeStream(p, call)
	case p.all:
		return g.sendAll(p, g.srv.store.readAll(p), call)
	default:
		recs, err := g.srv.store.readStream(p)
		var deleted errStreamDeleted
		switch {
		case errors.As(err, &deleted):
			return streamDeletedStatus(call.SetTrailer, p.stream)
		case errors.Is(err, errNotFound):
			return call.Send(streamNotFound(p.stream))
		case err != nil:
			return status.Error(codes.Internal, err.Error())
		}
		return g.sendAll(p, recs, call)
	}
}

// sendAll sends records as read events.
func (g *streamsService) sendAll(p readPlan, recs []*record, call api.Streams_ReadServer) error {
	for _, rec := range recs {
		if err := g.srv.store.sendRead(call, rec, p); err != nil {
			return err
		}
	}
	return nil
}

// validPosition reports whether a `$all` position is one a client can have
// seen: 0, the position of a record, or at or after the end of the log.
func (s *store) validPosition(pos uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pos == 0 || pos >= s.nextPos {
		return true
	}
	i := s.indexFromLocked(pos)
	return i < len(s.log) && s.log[i].position == pos
}

// errNotFound is the store's answer for a missing or soft-deleted stream.
var errNotFound = errors.New("esdbtest: stream not found")

// readStream returns the events a stream read returns, with the stream's
// metadata applied.
func (s *store) readStream(p readPlan) ([]*record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[p.stream]
	if st != nil && st.tombstone != nil {
		return nil, errStreamDeleted{stream: p.stream}
	}
	if st.last() < 0 || s.softDeletedLocked(p.stream) {
		return nil, errNotFound
	}
	m := s.metaLocked(p.stream)
	first := s.firstVisibleLocked(st, m)
	last := uint64(st.last())
	now := s.now()
	var out []*record
	add := func(rec *record) bool {
		if s.visibleLocked(rec, m, now) {
			out = append(out, rec)
		}
		return uint64(len(out)) < p.count
	}
	if p.forwards {
		from := first
		switch p.from {
		case fromEnd:
			from = last + 1
		case fromPoint:
			from = max(p.point, first)
		}
		for r := from; r <= last && add(st.events[r]); r++ {
		}
		return out, nil
	}
	from := last
	if p.from == fromStart {
		from = 0
	} else if p.from == fromPoint && p.point < last {
		from = p.point
	}
	for r := int64(from); r >= int64(first) && add(st.events[r]); r-- {
	}
	return out, nil
}

// readAll returns the records a `$all` read returns: forwards from a
// position inclusive, backwards from a position exclusive.
func (s *store) readAll(p readPlan) []*record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*record
	add := func(rec *record) bool {
		if p.filter.match(rec) {
			out = append(out, rec)
		}
		return uint64(len(out)) < p.count
	}
	if p.forwards {
		i := 0
		switch p.from {
		case fromEnd:
			i = len(s.log)
		case fromPoint:
			i = s.indexFromLocked(p.point)
		}
		for ; i < len(s.log) && add(s.log[i]); i++ {
		}
		return out
	}
	i := len(s.log) - 1
	switch p.from {
	case fromStart:
		i = -1
	case fromPoint:
		i = s.indexFromLocked(p.point) - 1
	}
	for ; i >= 0 && add(s.log[i]); i-- {
	}
	return out
}

// sendRead sends a record as a read event, resolving a link if asked.
func (s *store) sendRead(call grpc.ServerStream, rec *record, p readPlan) error {
	event, link := s.resolveRead(rec, p)
	return call.SendMsg(encodeReadEvent(event, link, p))
}

// resolveRead returns what the read event of a record carries: the record
// itself, or, for a link to resolve, its target (nil when it is gone) and
// the link.
func (s *store) resolveRead(rec *record, p readPlan) (event, link *record) {
	if p.resolve && rec.eventType == linkEventType {
		return s.resolveLink(rec), rec
	}
	return rec, nil
}

// resolveLink finds the record a link event points to, nil if it is gone.
func (s *store) resolveLink(link *record) *record {
	rev, name, ok := parseLink(link)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolveLinkLocked(rev, name)
}

// resolveLinkLocked returns event rev of stream name if reads may still
// return it, nil otherwise.
func (s *store) resolveLinkLocked(rev uint64, name string) *record {
	st := s.streams[name]
	if st == nil || st.tombstone != nil || rev >= uint64(len(st.events)) || s.softDeletedLocked(name) {
		return nil
	}
	m := s.metaLocked(name)
	if rev < s.firstVisibleLocked(st, m) || !s.visibleLocked(st.events[rev], m, s.now()) {
		return nil // truncated or expired by the target's metadata
	}
	return st.events[rev]
}

// parseLink decodes the target of a link event, "revision@stream".
func parseLink(link *record) (rev uint64, name string, ok bool) {
	revText, name, ok := strings.Cut(string(link.data), "@")
	if !ok {
		return 0, "", false
	}
	rev, err := strconv.ParseUint(revText, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return rev, name, true
}

// recordedEvent is the wire form of a record.
func recordedEvent(rec *record, stringIDs bool) *api.ReadResp_ReadEvent_RecordedEvent {
	return &api.ReadResp_ReadEvent_RecordedEvent{
		Id:               wireUUID(rec.id, stringIDs),
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(rec.stream)},
		StreamRevision:   rec.revision,
		PreparePosition:  rec.position,
		CommitPosition:   rec.position,
		Metadata: map[string]string{
			"type":         rec.eventType,
			"content-type": rec.contentType,
			"created":      strconv.FormatInt(ticks(rec.created), 10),
		},
		CustomMetadata: rec.metadata,
		Data:           rec.data,
	}
}

// ticks returns the 100-nanosecond ticks since the Unix epoch that
// EventStoreDB sends as the created time.
func ticks(t time.Time) int64 {
	return t.UnixNano() / 100
}

// wireUUID encodes an ID in the form the reader asked for.
func wireUUID(id uuid.UUID, asString bool) *shared.UUID {
	if asString {
		return &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}}
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits:  int64(binary.BigEndian.Uint64(id[:8])),
		LeastSignificantBits: int64(binary.BigEndian.Uint64(id[8:])),
	}}}
}

// uuidFromBits decodes the structured wire form of a UUID.
func uuidFromBits(most, least int64) uuid.UUID {
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[:8], uint64(most))
	binary.BigEndian.PutUint64(id[8:], uint64(least))
	return id
}
