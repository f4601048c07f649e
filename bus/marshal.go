package bus

import (
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
)

// Metadata keys of the messages the bus publishes. Message UUIDs are
// command IDs and event IDs.
const (
	// MetadataType is the type name of a command or event, as its registry
	// knows it ("name", as Watermill's cqrs marshalers write it).
	MetadataType = "name"
	// MetadataContentType is the content type of the payload.
	MetadataContentType = "content_type"
	// MetadataCorrelationID and MetadataCausationID are the chain's
	// correlation ID and the ID of the message that caused this one.
	MetadataCorrelationID = middleware.CorrelationIDMetadataKey
	MetadataCausationID   = "causation_id"
	// MetadataEvent is the metadata of a stored event, as JSON
	// ([es.Metadata]); of a command, only when it has values besides the
	// correlation and causation IDs.
	MetadataEvent = "metadata"
	// MetadataStream, MetadataRevision, MetadataPosition and
	// MetadataCreated describe a relayed event as stored.
	MetadataStream   = "stream"
	MetadataRevision = "revision"
	MetadataPosition = "position"
	MetadataCreated  = "created"
	// MetadataReplyTo is the topic of the replies to a request, and
	// MetadataDeadline its caller's deadline (RFC 3339).
	MetadataReplyTo  = "reply_to"
	MetadataDeadline = "deadline"
)

// marshaler adapts an es.Registry to Watermill's cqrs marshaler: names are
// the registry's names, payloads its codec's. Outgoing commands are
// encoded before they reach cqrs (with their context), as *outgoing.
type marshaler struct {
	types  *es.Registry
	upcast bool // route events by their name after upcasting
}

// outgoing is a command encoded by Send or Request.
type outgoing struct {
	name string
	msg  *message.Message
	call *call // the request's pending call; nil for Send
}

// decodeError is a message that cannot be decoded: it is never retried.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return "bus: decode: " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

func (m marshaler) Marshal(v any) (*message.Message, error) {
	o, ok := v.(*outgoing)
	if !ok {
		return nil, fmt.Errorf("bus: cannot marshal a %T", v)
	}
	return o.msg, nil
}

func (m marshaler) Unmarshal(msg *message.Message, v any) error {
	val, err := m.types.Decode(m.record(msg))
	if err != nil {
		return &decodeError{err}
	}
	dst := reflect.ValueOf(v).Elem()
	src := reflect.ValueOf(val)
	if !src.Type().AssignableTo(dst.Type()) {
		return &decodeError{fmt.Errorf("%q decodes to %v, not %v", msg.Metadata.Get(MetadataType), src.Type(), dst.Type())}
	}
	dst.Set(src)
	return nil
}

func (m marshaler) Name(v any) string {
	if o, ok := v.(*outgoing); ok {
		return o.name
	}
	name, _ := m.types.Name(v)
	return name
}

func (m marshaler) NameFromMessage(msg *message.Message) string {
	name := msg.Metadata.Get(MetadataType)
	if !m.upcast || !m.types.HasUpcaster(name) {
		return name
	}
	rec, err := m.types.Upcast(recordFromMessage(msg))
	if err != nil {
		return name // decoding reports the error
	}
	return rec.Type
}

// record returns what decoding msg needs: the whole stored event if an
// upcaster may rewrite it, else only the fields that decoding reads and
// its errors name.
func (m marshaler) record(msg *message.Message) es.RecordedEvent {
	md := msg.Metadata
	name := md.Get(MetadataType)
	if m.types.HasUpcaster(name) {
		return recordFromMessage(msg)
	}
	rec := es.RecordedEvent{Type: name, ContentType: md.Get(MetadataContentType), Stream: md.Get(MetadataStream), Data: msg.Payload}
	if r := md.Get(MetadataRevision); r != "" { // none on a command
		rec.Revision, _ = strconv.ParseUint(r, 10, 64)
	}
	return rec
}

// recordFromMessage rebuilds the stored event (or, for a command, the
// fields that decoding needs) that msg carries.
func recordFromMessage(msg *message.Message) es.RecordedEvent {
	return eventFields(msg).record()
}

// fields are the metadata of a relayed event, as strings: what
// [EventFromContext] parses when asked.
type fields struct {
	id, typ, contentType, stream, revision, position, created, metadata string
	data                                                                []byte
}

func eventFields(msg *message.Message) fields {
	md := msg.Metadata
	return fields{id: msg.UUID, typ: md.Get(MetadataType), contentType: md.Get(MetadataContentType),
		stream: md.Get(MetadataStream), revision: md.Get(MetadataRevision), position: md.Get(MetadataPosition),
		created: md.Get(MetadataCreated), metadata: md.Get(MetadataEvent), data: msg.Payload}
}

func (f fields) record() es.RecordedEvent {
	rec := es.RecordedEvent{Type: f.typ, ContentType: f.contentType, Stream: f.stream, Data: f.data}
	rec.ID, _ = uuid.Parse(f.id)
	rec.Revision, _ = strconv.ParseUint(f.revision, 10, 64)
	rec.Position, _ = es.ParsePosition(f.position)
	rec.Created, _ = time.Parse(time.RFC3339Nano, f.created)
	if f.metadata != "" {
		rec.Metadata = []byte(f.metadata)
	}
	return rec
}

// eventMessage is the message the relay publishes for a stored event.
func eventMessage(e es.RecordedEvent) *message.Message {
	msg := message.NewMessage(e.ID.String(), e.Data)
	md := make(message.Metadata, 9)
	msg.Metadata = md
	md.Set(MetadataType, e.Type)
	md.Set(MetadataContentType, e.ContentType)
	md.Set(MetadataStream, e.Stream)
	md.Set(MetadataRevision, strconv.FormatUint(e.Revision, 10))
	md.Set(MetadataPosition, e.Position.String())
	if !e.Created.IsZero() {
		md.Set(MetadataCreated, e.Created.Format(time.RFC3339Nano))
	}
	if len(e.Metadata) > 0 {
		md.Set(MetadataEvent, string(e.Metadata))
		if m, err := es.ParseMetadata(e.Metadata); err == nil {
			if m.CorrelationID != "" {
				md.Set(MetadataCorrelationID, m.CorrelationID)
			}
			if m.CausationID != "" {
				md.Set(MetadataCausationID, m.CausationID)
			}
			// The trace of the append (es/esotel), for the handlers.
			for _, k := range []string{MetadataTraceParent, MetadataTraceState} {
				if v := m.Values[k]; v != "" {
					md.Set(k, v)
				}
			}
		}
	}
	return msg
}
