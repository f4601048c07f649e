package esdbtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/google/uuid"
	v2 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// multiAppendVersion is the first KurrentDB version with multi-stream
// appends (StreamsService.AppendSession).
const multiAppendMajor = 25

// kurrentDB25 reports whether the server reports KurrentDB 25.0 or later,
// which serves multi-stream appends and fills in the details of caught-up
// messages.
func (c *config) kurrentDB25() bool { return c.versionAtLeast(multiAppendMajor, 0) }

// v2StreamsService is the name GetSupportedMethods reports KurrentDB's v2
// streams service under.
const v2StreamsService = "kurrentdb.protocol.v2.streams.streamsservice"

// v2Service serves KurrentDB's v2 StreamsService: AppendSession, the
// multi-stream append of KurrentDB 25.0. It is registered only when the
// server reports 25.0 or later. AppendRecords (26.1) is not served.
type v2Service struct {
	v2.UnimplementedStreamsServiceServer
	srv *Server
}

// streamPart is one stream's part of a multi-stream append.
type streamPart struct {
	name   string
	exp    expectation
	events []proposal
}

// AppendSession implements StreamsService.AppendSession: one request per
// stream, then one response once the client has sent them all. Nothing is
// decided before the last request: all parts are then checked and written
// under one lock, each in the order of the requests, so that their events
// follow each other in `$all`.
func (g *v2Service) AppendSession(call grpc.ClientStreamingServer[v2.AppendRequest, v2.AppendSessionResponse]) error {
	var parts []streamPart
	seen := map[string]bool{}
	size := 0
	limit := g.srv.cfg.maxAppendSize
	for {
		req, err := call.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p, err := sessionPart(req)
		if err != nil {
			return err
		}
		if seen[p.name] {
			return streamsErrorStatus(codes.Aborted, fmt.Sprintf("Stream %s is already in the append session.", p.name),
				"StreamAlreadyInAppendSessionErrorDetails", appendString(nil, 1, p.name))
		}
		seen[p.name] = true
		if err := g.srv.authorizeWrite(call.Context(), p.name, call.SetTrailer); err != nil {
			return err
		}
		for _, ev := range p.events {
			size += ev.size()
		}
		if size > limit {
			return streamsErrorStatus(codes.Aborted, fmt.Sprintf("The append session of %d bytes exceeds the maximum of %d bytes.", size, limit),
				"AppendTransactionSizeExceededErrorDetails", appendInt(appendInt(nil, 1, int64(size)), 2, int64(limit)))
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return grpcstatus.Error(codes.FailedPrecondition, "The append session has no requests.")
	}
	results, err := g.srv.store.appendStreams(parts)
	if err != nil {
		return sessionError(err)
	}
	resp := &v2.AppendSessionResponse{}
	for i, r := range results {
		pos := int64(r.position)
		resp.Output = append(resp.Output, &v2.AppendResponse{Stream: parts[i].name, StreamRevision: r.current, Position: &pos})
		resp.Position = max(resp.Position, pos)
	}
	return call.SendAndClose(resp)
}

// sessionPart decodes one request of an append session. KurrentDB keeps
// a record's properties as its event's metadata: they are written as a JSON
// object (keys sorted, values as JSON), an empty metadata when there are
// none.
func sessionPart(req *v2.AppendRequest) (streamPart, error) {
	if req.GetStream() == "" {
		return streamPart{}, invalidArgument("an append request needs a stream")
	}
	p := streamPart{name: req.GetStream(), exp: expectation{kind: expectAny}}
	if req.ExpectedRevision != nil {
		switch r := req.GetExpectedRevision(); {
		case r >= 0:
			p.exp = expectation{kind: expectRevision, revision: uint64(r)}
		case r == -1:
			p.exp = expectation{kind: expectNoStream}
		case r == -2:
			p.exp = expectation{kind: expectAny}
		case r == -4:
			p.exp = expectation{kind: expectExists}
		default:
			return streamPart{}, invalidArgument("expected revision %d of stream %s is not valid", r, p.name)
		}
	}
	if len(req.GetRecords()) == 0 {
		return streamPart{}, invalidArgument("the append request for stream %s has no records", p.name)
	}
	for _, rec := range req.GetRecords() {
		ev, err := recordProposal(p.name, rec)
		if err != nil {
			return streamPart{}, err
		}
		p.events = append(p.events, ev)
	}
	return p, nil
}

// recordProposal validates a record of an append session.
func recordProposal(stream string, rec *v2.AppendRecord) (proposal, error) {
	id, err := parseUUIDText(rec.GetRecordId())
	if err != nil {
		return proposal{}, invalidArgument("record of stream %s: %v", stream, err)
	}
	name := rec.GetSchema().GetName()
	if name == "" {
		return proposal{}, invalidArgument("record %s of stream %s has no schema name", id, stream)
	}
	contentType := contentTypeBinary
	if rec.GetSchema().GetFormat() == v2.SchemaFormat_SCHEMA_FORMAT_JSON {
		contentType = contentTypeJSON
	}
	meta, err := propertiesJSON(rec.GetProperties(), rec.GetSchema())
	if err != nil {
		return proposal{}, invalidArgument("record %s of stream %s: %v", id, stream, err)
	}
	data := rec.GetData()
	if data == nil {
		data = []byte{}
	}
	return proposal{id: id, eventType: name, contentType: contentType, data: data, metadata: meta}, nil
}

// schemaFormats names the schema formats as KurrentDB writes them in an
// event's metadata.
var schemaFormats = map[v2.SchemaFormat]string{
	v2.SchemaFormat_SCHEMA_FORMAT_UNSPECIFIED: "Unspecified",
	v2.SchemaFormat_SCHEMA_FORMAT_JSON:        "Json",
	v2.SchemaFormat_SCHEMA_FORMAT_PROTOBUF:    "Protobuf",
	v2.SchemaFormat_SCHEMA_FORMAT_AVRO:        "Avro",
	v2.SchemaFormat_SCHEMA_FORMAT_BYTES:       "Bytes",
}

// Metadata keys of the record's schema.
const (
	schemaFormatKey = "$schema.format"
	schemaNameKey   = "$schema.name"
)

// propertiesJSON encodes a record's properties as its event's metadata, as
// KurrentDB 25 does: a JSON object of the properties and the record's
// schema format and name ("$schema.format", "$schema.name"), keys sorted,
// without white space.
func propertiesJSON(props map[string]*structpb.Value, schema *v2.SchemaInfo) ([]byte, error) {
	all := make(map[string]*structpb.Value, len(props)+2)
	for k, v := range props {
		all[k] = v
	}
	format, ok := schemaFormats[schema.GetFormat()]
	if !ok {
		format = "Unspecified"
	}
	all[schemaFormatKey] = structpb.NewStringValue(format)
	all[schemaNameKey] = structpb.NewStringValue(schema.GetName())
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		kj, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vj, err := all[k].MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("property %q: %w", k, err)
		}
		out = append(append(out, kj...), ':')
		var compact bytes.Buffer
		if err := json.Compact(&compact, vj); err != nil {
			return nil, fmt.Errorf("property %q: %w", k, err)
		}
		out = append(out, compact.Bytes()...)
	}
	return append(out, '}'), nil
}

// appendStreams decides every part under one lock, as append decides one
// stream, then writes the parts that are not idempotent retries, in order,
// and commits them together. Any failing part fails the whole append, with
// nothing written.
func (s *store) appendStreams(parts []streamPart) ([]writeResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	results := make([]writeResult, len(parts))
	retried := make([]bool, len(parts))
	softDeleted := make([]bool, len(parts))
	for i, p := range parts {
		soft, err := s.checkDeletedLocked(p.name, p.exp)
		if err != nil {
			if st := s.streams[p.name]; errors.As(err, new(errStreamDeleted)) && (st == nil || st.tombstone == nil) {
				return nil, errSoftDeleted{stream: p.name}
			}
			return nil, err
		}
		softDeleted[i] = soft
		st := s.streams[p.name]
		wrong := errWrongExpected{stream: p.name, expected: p.exp, current: st.last()}
		if res, done, err := st.retried(p.exp, p.events, soft, wrong); done {
			if err != nil {
				return nil, err
			}
			results[i], retried[i] = res, true
			continue
		}
		if !st.expects(p.exp, soft) {
			return nil, wrong
		}
	}
	for i, p := range parts {
		if !retried[i] {
			results[i] = s.writePartLocked(p.name, p.events, softDeleted[i])
		}
	}
	s.notifyLocked()
	return results, nil
}

// errSoftDeleted is the error of a part that expects a soft-deleted
// stream to exist: KurrentDB tells it from a tombstoned stream.
type errSoftDeleted struct{ stream string }

func (e errSoftDeleted) Error() string {
	return fmt.Sprintf("esdbtest: stream %q is deleted", e.stream)
}

// sessionError is the status an append session fails with, with the
// details KurrentDB 25 sends.
func sessionError(err error) error {
	var deleted errStreamDeleted
	var soft errSoftDeleted
	var wrong errWrongExpected
	switch {
	case errors.As(err, &soft):
		return streamsErrorStatus(codes.FailedPrecondition, fmt.Sprintf("Stream %s is deleted.", soft.stream),
			"StreamDeletedErrorDetails", appendString(nil, 1, soft.stream))
	case errors.As(err, &deleted):
		return streamsErrorStatus(codes.FailedPrecondition, fmt.Sprintf("Stream %s is tombstoned.", deleted.stream),
			"StreamTombstonedErrorDetails", appendString(nil, 1, deleted.stream))
	case errors.As(err, &wrong):
		b := appendString(nil, 1, wrong.stream)
		b = appendSint(b, 2, wrong.expected.legacy())
		b = appendSint(b, 3, wrong.current)
		return streamsErrorStatus(codes.FailedPrecondition,
			fmt.Sprintf("Append failed due to a revision conflict on stream %s: expected %s, actual %d.", wrong.stream, wrong.expected, wrong.current),
			"StreamRevisionConflictErrorDetails", b)
	}
	return grpcstatus.Error(codes.Internal, err.Error())
}

// streamsErrorStatus is a status carrying one of KurrentDB's v2 streams
// error details, encoded by hand: the Go package of those messages imports
// protobuf files that the v4 client registers too.
func streamsErrorStatus(code codes.Code, msg, detail string, value []byte) error {
	return grpcstatus.FromProto(&status.Status{
		Code:    int32(code),
		Message: msg,
		Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/kurrentdb.protocol.v2.streams.errors." + detail, Value: value}},
	}).Err()
}

func appendString(b []byte, field protowire.Number, v string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendSint(b []byte, field protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeZigZag(v))
}

func appendInt(b []byte, field protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// parseUUIDText decodes a record ID; a record without one gets a new ID.
func parseUUIDText(s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.New(), nil
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("record ID %q is not a UUID", s)
	}
	if id == uuid.Nil {
		return uuid.UUID{}, errors.New("the record ID is the nil UUID")
	}
	return id, nil
}
