package esdbbus

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/google/uuid"
)

// Metadata keys this package adds to the bus's.
const (
	// MetadataRetryCount is how many times the server delivered the
	// message before, on received messages.
	MetadataRetryCount = "retry_count"
	// MetadataWatermillUUID keeps a message UUID that is not a UUID, which
	// the event ID cannot be.
	MetadataWatermillUUID = "watermill_uuid"
	// DefaultEventType is the event type of a message without the bus's
	// type key (bus.MetadataType).
	DefaultEventType = "message"
)

// uuidSpace names the event IDs made from message UUIDs that are not UUIDs.
var uuidSpace = uuid.MustParse("6f0a3a52-6a7c-4bd4-9a5e-2f6c0a3d5b11")

// toEvent converts a Watermill message to the event that stores it.
func toEvent(msg *message.Message) (es.EventData, error) {
	md := make(map[string]string, len(msg.Metadata)+3)
	for k, v := range msg.Metadata {
		md[k] = v
	}
	id, err := uuid.Parse(msg.UUID)
	if err != nil || msg.UUID == "" {
		id = uuid.NewSHA1(uuidSpace, []byte(msg.UUID))
		md[MetadataWatermillUUID] = msg.UUID
	}
	if v := msg.Metadata.Get(bus.MetadataCorrelationID); v != "" {
		md[es.MetadataCorrelationID] = v
	}
	if v := msg.Metadata.Get(bus.MetadataCausationID); v != "" {
		md[es.MetadataCausationID] = v
	}
	raw, err := json.Marshal(md)
	if err != nil {
		return es.EventData{}, fmt.Errorf("esdbbus: metadata of message %s: %w", msg.UUID, err)
	}
	typ := msg.Metadata.Get(bus.MetadataType)
	if typ == "" {
		typ = DefaultEventType
	}
	ct := es.ContentTypeBinary
	if msg.Metadata.Get(bus.MetadataContentType) == es.ContentTypeJSON && json.Valid(msg.Payload) {
		ct = es.ContentTypeJSON
	}
	return es.EventData{ID: id, Type: typ, ContentType: ct, Data: msg.Payload, Metadata: raw}, nil
}

// fromEvent converts a delivered event to a Watermill message: the event's
// metadata (a JSON object; its string values become metadata entries, the
// others their JSON), `$correlationId` and `$causationId` under the bus's
// keys, and the event's fields under the bus's keys unless the metadata
// has them.
func fromEvent(m *eventstoredb.GroupMessage) *message.Message {
	e := m.Event
	msg := message.NewMessage(e.ID.String(), e.Data)
	md := message.Metadata{}
	var obj map[string]json.RawMessage
	if len(e.Metadata) > 0 && json.Unmarshal(e.Metadata, &obj) == nil {
		for k, raw := range obj {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				md[k] = s
			} else {
				md[k] = string(raw)
			}
		}
	}
	if id := md[MetadataWatermillUUID]; id != "" {
		msg.UUID = id
		delete(md, MetadataWatermillUUID)
	}
	for from, to := range map[string]string{es.MetadataCorrelationID: bus.MetadataCorrelationID, es.MetadataCausationID: bus.MetadataCausationID} {
		if v, ok := md[from]; ok {
			if md[to] == "" {
				md[to] = v
			}
			delete(md, from)
		}
	}
	// An event the bus published carries the bus's type key; any other
	// (a domain event) carries its metadata for the bus to decode.
	_, published := md[bus.MetadataType]
	setDefault := func(k, v string) {
		if md[k] == "" && v != "" {
			md[k] = v
		}
	}
	setDefault(bus.MetadataType, e.Type)
	setDefault(bus.MetadataContentType, e.ContentType)
	setDefault(bus.MetadataStream, e.Stream)
	setDefault(bus.MetadataRevision, strconv.FormatUint(e.Revision, 10))
	setDefault(bus.MetadataPosition, e.Position.String())
	if !e.Created.IsZero() {
		setDefault(bus.MetadataCreated, e.Created.Format(time.RFC3339Nano))
	}
	if len(e.Metadata) > 0 && !published {
		setDefault(bus.MetadataEvent, string(e.Metadata))
	}
	md[MetadataRetryCount] = strconv.Itoa(m.RetryCount)
	msg.Metadata = md
	return msg
}
