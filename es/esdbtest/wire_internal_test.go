package esdbtest

// This test is internal: it checks an unexported encoder against the
// message the server built before it, which no black-box test can reach.

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// readEventMessage is the message form of a read event, as the server built
// it before it wrote the wire form itself: the reference for
// encodeReadEvent.
func readEventMessage(event, link *record, p readPlan) *api.ReadResp {
	ev := &api.ReadResp_ReadEvent{
		Position: &api.ReadResp_ReadEvent_NoPosition{NoPosition: &shared.Empty{}},
	}
	if event != nil {
		ev.Event = recordedEvent(event, p.stringIDs)
	}
	if link != nil {
		ev.Link = recordedEvent(link, p.stringIDs)
	}
	if p.positions {
		ev.Position = &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: readEventRecord(event, link).position}
	}
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: ev}}
}

// TestReadEventWire checks that the read events the server writes itself
// decode to the messages it used to build: events and links, with and
// without their target, `$all` and stream reads, structured and string IDs,
// zero, empty, negative and multi-byte-length values.
func TestReadEventWire(t *testing.T) {
	big := []byte(strings.Repeat("x", 70_000)) // lengths of three varint bytes
	records := []*record{
		{}, // everything zero or empty
		{
			id:          uuid.MustParse("0190f1d2-3c4b-7a8e-9f00-0123456789ab"),
			stream:      "order-42",
			revision:    7,
			position:    1_234_567,
			eventType:   "OrderPlaced",
			contentType: contentTypeJSON,
			created:     time.Date(2026, 12, 2, 5, 0, 0, 123_456_700, time.UTC),
			data:        []byte(`{"id":42}`),
			metadata:    []byte(`{"by":"ada"}`),
		},
		{ // bits with the sign set, an empty non-nil payload, a time before 1970
			id:          uuid.MustParse("ffffffff-ffff-ffff-8000-000000000000"),
			stream:      "ünïcødé-stream",
			revision:    math.MaxInt64,
			position:    math.MaxUint64,
			eventType:   tombstoneEventType,
			contentType: contentTypeBinary,
			created:     time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC),
			data:        []byte{},
			metadata:    []byte{},
		},
		{ // a zero high half, long fields
			id:          uuid.UUID{15: 1},
			stream:      strings.Repeat("s", 300),
			revision:    1,
			position:    128,
			eventType:   strings.Repeat("T", 200),
			contentType: contentTypeBinary,
			data:        big,
			metadata:    big[:200],
		},
		{ // a link
			id:          uuid.New(),
			stream:      "$ce-order",
			revision:    3,
			position:    4096,
			eventType:   linkEventType,
			contentType: contentTypeBinary,
			created:     time.Unix(1_700_000_000, 0),
			data:        []byte("7@order-42"),
		},
	}
	for _, p := range []readPlan{{}, {all: true, positions: true}, {positions: true}, {stringIDs: true}, {all: true, positions: true, stringIDs: true}} {
		for i, event := range records {
			for j, link := range append([]*record{nil}, records...) {
				if event == link {
					continue
				}
				t.Run(fmt.Sprintf("all=%t/positions=%t/stringIDs=%t/event=%d/link=%d", p.all, p.positions, p.stringIDs, i, j-1), func(t *testing.T) {
					checkReadEventWire(t, event, link, p)
				})
			}
		}
		// A resolved link whose target is gone.
		checkReadEventWire(t, nil, records[4], p)
	}
}

// checkReadEventWire checks one read event's wire form, and the codec that
// sends it.
func checkReadEventWire(t *testing.T, event, link *record, p readPlan) {
	t.Helper()
	enc := encodeReadEvent(event, link, p)
	require.Len(t, enc.b, cap(enc.b), "the computed size is the encoded size")
	got := new(api.ReadResp)
	require.NoError(t, proto.Unmarshal(enc.b, got))
	want := readEventMessage(event, link, p)
	require.True(t, proto.Equal(want, got), "want %v\ngot  %v", want, got)

	// The server's codec sends the encoded bytes as they are, and other
	// messages as the protobuf codec does.
	codec := newServerCodec()
	data, err := codec.Marshal(enc)
	require.NoError(t, err)
	require.Equal(t, []byte(enc.b), data.Materialize())
	data, err = codec.Marshal(want)
	require.NoError(t, err)
	got = new(api.ReadResp)
	require.NoError(t, codec.Unmarshal(data, got))
	require.True(t, proto.Equal(want, got))
}
