package esdbtest

import (
	"errors"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// expectKind is the kind of expected revision of a write.
type expectKind int

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectRevision
)

// expectation is the expected revision of an append or delete.
type expectation struct {
	kind     expectKind
	revision uint64
}

func (e expectation) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectExists:
		return "stream exists"
	case expectRevision:
		return strconv.FormatUint(e.revision, 10)
	default:
		return "any"
	}
}

// legacy returns the version number EventStoreDB reports in trailers.
func (e expectation) legacy() int64 {
	switch e.kind {
	case expectNoStream:
		return legacyNoStream
	case expectExists:
		return legacyStreamExists
	case expectRevision:
		return int64(e.revision)
	default:
		return legacyAny
	}
}

// writeResult is the outcome of a successful append.
type writeResult struct {
	current  int64  // last revision of the stream, -1 for none
	position uint64 // position of the last event written, 0 for none
}

// checkDeletedLocked runs the checks an append and a delete share: it
// returns whether the stream is soft-deleted, or the error to report.
func (s *store) checkDeletedLocked(name string, exp expectation) (softDeleted bool, err error) {
	st := s.streams[name]
	if st != nil && st.tombstone != nil {
		return false, errStreamDeleted{stream: name}
	}
	softDeleted = s.softDeletedLocked(name)
	if exp.kind == expectExists {
		if softDeleted {
			return false, errStreamDeleted{stream: name}
		}
		if st.last() < 0 && !s.hasMetaLocked(name) {
			return false, errWrongExpected{stream: name, expected: exp, current: -1}
		}
	}
	return softDeleted, nil
}

// append writes events to a stream under an expected revision, following
// EventStoreDB's order of checks (see the package documentation): deleted
// streams, then an idempotent retry of events already written, then the
// expected revision, then the write.
func (s *store) append(name string, exp expectation, events []proposal) (writeResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	softDeleted, err := s.checkDeletedLocked(name, exp)
	if err != nil {
		return writeResult{}, err
	}
	st := s.streams[name]
	wrong := errWrongExpected{stream: name, expected: exp, current: st.last()}
	if res, done, err := st.retried(exp, events, softDeleted, wrong); done {
		return res, err
	}
	if !st.expects(exp, softDeleted) {
		return writeResult{}, wrong
	}
	if len(events) == 0 {
		return s.emptyWriteLocked(name, softDeleted), nil
	}
	return s.writeEventsLocked(name, events, softDeleted), nil
}

// retried answers an append whose events may already be in the stream:
// done is true when the append is decided here, with the result of the
// original write (an idempotent retry) or the error wrong. Where the
// expected revision points before the end of the stream, the events from
// there on must be the proposed ones. A nil stream has no events.
func (st *stream) retried(exp expectation, events []proposal, softDeleted bool, wrong errWrongExpected) (res writeResult, done bool, err error) {
	if len(events) == 0 || st == nil {
		return writeResult{}, false, nil
	}
	current := st.last()
	switch exp.kind {
	case expectAny, expectExists:
		rev, ok := st.ids[events[0].id]
		if !ok {
			return writeResult{}, false, nil
		}
		if res, ok := st.matches(int64(rev), events); ok {
			return res, true, nil
		}
		return writeResult{}, true, wrong
	case expectNoStream, expectRevision:
		base := int64(-1)
		if exp.kind == expectRevision {
			if current < 0 || exp.revision > uint64(current) {
				return writeResult{}, false, nil
			}
			base = int64(exp.revision)
		}
		if base >= current {
			return writeResult{}, false, nil
		}
		if res, ok := st.matches(base+1, events); ok {
			return res, true, nil
		}
		if exp.kind == expectNoStream && softDeleted {
			return writeResult{}, false, nil // a soft-deleted stream is recreated
		}
		return writeResult{}, true, wrong
	}
	return writeResult{}, false, nil
}

// expects reports whether the stream is where a new write expects it:
// absent (or soft-deleted) for NoStream, at exactly that revision for a
// revision. Any and StreamExists were checked before (checkDeletedLocked).
func (st *stream) expects(exp expectation, softDeleted bool) bool {
	current := st.last()
	switch exp.kind {
	case expectNoStream:
		return current < 0 || softDeleted
	case expectRevision:
		return current >= 0 && exp.revision == uint64(current)
	default:
		return true
	}
}

// emptyWriteLocked answers an append of no events: the stream's current
// revision and position. Like EventStoreDB, an empty write undeletes a
// soft-deleted stream.
func (s *store) emptyWriteLocked(name string, softDeleted bool) writeResult {
	st := s.streams[name]
	current := st.last()
	res := writeResult{current: current}
	if current >= 0 {
		res.position = st.events[current].position
	}
	if softDeleted {
		s.undeleteLocked(name, uint64(current+1))
		s.notifyLocked()
	}
	return res
}

// writeEventsLocked writes events that passed every check. Writing to a
// soft-deleted stream recreates it, and writing the metadata of a
// soft-deleted stream undeletes that stream too: in both cases the old
// events stay hidden behind `$tb`.
func (s *store) writeEventsLocked(name string, events []proposal, softDeleted bool) writeResult {
	res := s.writePartLocked(name, events, softDeleted)
	s.notifyLocked()
	return res
}

// writePartLocked writes events as writeEventsLocked does, without
// committing them: the caller notifies once it has written all it writes.
func (s *store) writePartLocked(name string, events []proposal, softDeleted bool) writeResult {
	current := s.streams[name].last()
	original, isMeta := strings.CutPrefix(name, metaStreamPrefix)
	metaOfSoftDeleted := isMeta && s.softDeletedLocked(original)

	var last *record
	for _, p := range events {
		last = s.writeLocked(name, p)
	}
	if softDeleted {
		s.undeleteLocked(name, uint64(current+1))
	}
	if metaOfSoftDeleted {
		s.undeleteLocked(original, uint64(s.streams[original].last()+1))
	}
	return writeResult{current: int64(last.revision), position: last.position}
}

// undeleteLocked rewrites the metadata of a soft-deleted stream with `$tb`
// set to the first revision of its new life, keeping the other keys.
func (s *store) undeleteLocked(name string, from uint64) {
	s.writeLocked(metaStreamPrefix+name, proposal{
		id:          uuid.New(),
		eventType:   metadataEventType,
		contentType: contentTypeJSON,
		data:        s.metaLocked(name).withTruncateBefore(from),
		metadata:    []byte{},
	})
}

// matches reports whether the events from revision start on have the
// proposed IDs in order, and returns the original result if so.
func (st *stream) matches(start int64, events []proposal) (writeResult, bool) {
	if start < 0 || start+int64(len(events))-1 > st.last() {
		return writeResult{}, false
	}
	for i, p := range events {
		if st.events[start+int64(i)].id != p.id {
			return writeResult{}, false
		}
	}
	last := st.events[start+int64(len(events))-1]
	return writeResult{current: int64(last.revision), position: last.position}, true
}

// Append implements the Streams.Append call: options first, then the
// proposed events, then one response.
func (g *streamsService) Append(call api.Streams_AppendServer) error {
	first, err := call.Recv()
	if err != nil {
		return recvError(err)
	}
	opts := first.GetOptions()
	if opts == nil {
		return invalidArgument("the first append message must carry the options")
	}
	name, err := streamName(opts.GetStreamIdentifier())
	if err != nil {
		return err
	}
	// An append that is not allowed is refused once its events are read:
	// answered before, the client's sends of them fail with EOF, and the v4
	// client reports that instead of the answer (as EventStoreDB, which
	// reads the request first, never makes it do).
	var deniedTrailer metadata.MD
	denied := g.srv.authorizeWrite(call.Context(), name, func(md metadata.MD) { deniedTrailer = md })
	exp, err := appendExpectation(opts)
	if err != nil {
		return err
	}

	var events []proposal
	size := 0
	limit := g.srv.cfg.maxAppendSize
	for {
		msg, err := call.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return recvError(err)
		}
		pm := msg.GetProposedMessage()
		if pm == nil {
			return invalidArgument("append messages after the options must be proposed messages")
		}
		p, err := toProposal(pm, call.SetTrailer)
		if err != nil {
			return err
		}
		size += p.size()
		if size > limit {
			return maxAppendSizeStatus(call.SetTrailer, limit)
		}
		events = append(events, p)
	}
	if denied != nil {
		call.SetTrailer(deniedTrailer)
		return denied
	}

	res, err := g.srv.store.append(name, exp, events)
	var deleted errStreamDeleted
	var wrong errWrongExpected
	switch {
	case errors.As(err, &deleted):
		return streamDeletedStatus(call.SetTrailer, name)
	case errors.As(err, &wrong):
		return call.SendAndClose(&api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{
			WrongExpectedVersion: wrongExpectedResponse(wrong),
		}})
	case err != nil:
		return status.Error(codes.Internal, err.Error())
	}

	success := &api.AppendResp_Success{}
	if res.current < 0 {
		success.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
		success.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	} else {
		success.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(res.current)}
		success.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: res.position, PreparePosition: res.position,
		}}
	}
	return call.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: success}})
}

// wrongExpectedResponse builds the message an append answers a wrong
// expected version with, in the current and the 20.6 layout.
func wrongExpectedResponse(e errWrongExpected) *api.AppendResp_WrongExpectedVersion {
	w := &api.AppendResp_WrongExpectedVersion{}
	if e.current < 0 {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(e.current)}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(e.current)}
	}
	switch e.expected.kind {
	case expectAny:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
	case expectExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
	case expectNoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: math.MaxUint64}
	default:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: e.expected.revision}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: e.expected.revision}
	}
	return w
}

// appendExpectation decodes the expected revision of an append.
func appendExpectation(opts *api.AppendReq_Options) (expectation, error) {
	switch v := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		return expectation{kind: expectAny}, nil
	case *api.AppendReq_Options_NoStream:
		return expectation{kind: expectNoStream}, nil
	case *api.AppendReq_Options_StreamExists:
		return expectation{kind: expectExists}, nil
	case *api.AppendReq_Options_Revision:
		return expectation{kind: expectRevision, revision: v.Revision}, nil
	default:
		return expectation{}, invalidArgument("expected stream revision is missing")
	}
}

// toProposal validates a proposed message.
func toProposal(pm *api.AppendReq_ProposedMessage, setTrailer func(metadata.MD)) (proposal, error) {
	id, err := parseUUID(pm.GetId())
	if err != nil {
		return proposal{}, err
	}
	md := pm.GetMetadata()
	eventType, ok := md["type"]
	if !ok || eventType == "" {
		return proposal{}, missingMetadataStatus(setTrailer, "type")
	}
	contentType, ok := md["content-type"]
	if !ok || contentType == "" {
		return proposal{}, missingMetadataStatus(setTrailer, "content-type")
	}
	if contentType != contentTypeJSON {
		contentType = contentTypeBinary
	}
	data := pm.GetData()
	if data == nil {
		data = []byte{}
	}
	custom := pm.GetCustomMetadata()
	if custom == nil {
		custom = []byte{}
	}
	return proposal{id: id, eventType: eventType, contentType: contentType, data: data, metadata: custom}, nil
}

// parseUUID decodes an event ID in either wire form. The nil UUID is
// rejected like EventStoreDB rejects an empty event ID.
func parseUUID(u *shared.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	switch v := u.GetValue().(type) {
	case *shared.UUID_Structured_:
		id = uuidFromBits(v.Structured.GetMostSignificantBits(), v.Structured.GetLeastSignificantBits())
	case *shared.UUID_String_:
		parsed, err := uuid.Parse(v.String_)
		if err != nil {
			return uuid.Nil, invalidArgument("invalid event id %q", v.String_)
		}
		id = parsed
	default:
		return uuid.Nil, invalidArgument("event id is missing")
	}
	if id == uuid.Nil {
		return uuid.Nil, invalidArgument("event id must not be empty")
	}
	return id, nil
}

// streamName decodes and validates a stream identifier.
func streamName(id *shared.StreamIdentifier) (string, error) {
	if id == nil {
		return "", invalidArgument("stream identifier is missing")
	}
	name := string(id.GetStreamName())
	if name == "" {
		return "", invalidArgument("stream name must not be empty")
	}
	if name == allStreamName || strings.ContainsRune(name, 0) {
		return "", invalidArgument("invalid stream name %q", name)
	}
	return name, nil
}

// recvError converts the error of a failed Recv into the call's status.
func recvError(err error) error {
	if errors.Is(err, io.EOF) {
		return invalidArgument("the request ended before its options")
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Canceled, err.Error())
}
