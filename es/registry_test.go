package es_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

type orderPlaced struct {
	OrderID string `json:"orderId"`
	Amount  int    `json:"amount"`
}

type orderShipped struct {
	OrderID string `json:"orderId"`
	Carrier string `json:"carrier"`
}

// binaryCodec stores strings as raw bytes.
type binaryCodec struct{}

func (binaryCodec) ContentType() string { return es.ContentTypeBinary }
func (binaryCodec) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case note:
		return []byte(v), nil
	case *note:
		return []byte(*v), nil
	}
	return nil, fmt.Errorf("binaryCodec: cannot encode %T", v)
}
func (binaryCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*note)
	if !ok {
		return fmt.Errorf("binaryCodec: cannot decode into %T", v)
	}
	*p = note(data)
	return nil
}

type note string

// badCodec claims a content type no store accepts.
type badCodec struct{ binaryCodec }

func (badCodec) ContentType() string { return "text/plain" }

func TestNewRegistryErrors(t *testing.T) {
	cases := []struct {
		name string
		opts []es.RegistryOption
		want []string // substrings of the error, one per problem
	}{
		{"EmptyName", []es.RegistryOption{es.Type[orderPlaced]("")}, []string{"is empty"}},
		{"BadName", []es.RegistryOption{es.Type[orderPlaced]("bad\xff")}, []string{"UTF-8"}},
		{"Pointer", []es.RegistryOption{es.Type[*orderPlaced]("OrderPlaced")}, []string{"register the value type"}},
		{"Interface", []es.RegistryOption{es.Type[error]("Error")}, []string{"register the value type"}},
		{"NameTwice", []es.RegistryOption{es.Type[orderPlaced]("Order"), es.Type[orderShipped]("Order")}, []string{`"Order" registered twice`}},
		{"TypeTwice", []es.RegistryOption{es.Type[orderPlaced]("A"), es.Type[orderPlaced]("B")}, []string{"registered twice"}},
		{"NilUpcaster", []es.RegistryOption{es.Upcast("A", nil)}, []string{`upcaster for "A" is nil`}},
		{"UpcasterTwice", []es.RegistryOption{es.Upcast("A", keep), es.Upcast("A", keep)}, []string{`upcaster for "A" registered twice`}},
		{"Codec", []es.RegistryOption{es.WithCodec(badCodec{})}, []string{`codec content type "text/plain"`}},
		{"NilCodec", []es.RegistryOption{es.WithCodec(nil)}, []string{"nil codec"}},
		{"AllJoined", []es.RegistryOption{
			es.Type[orderPlaced](""),
			es.Upcast("A", nil),
			es.WithCodec(badCodec{}),
			es.Type[*orderShipped]("S"),
		}, []string{"is empty", "is nil", "codec content type", "register the value type"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := es.NewRegistry(c.opts...)
			require.Error(t, err)
			assert.Nil(t, r)
			for _, want := range c.want {
				assert.Contains(t, err.Error(), want)
			}
			if joined, ok := err.(interface{ Unwrap() []error }); ok {
				assert.Len(t, joined.Unwrap(), len(c.want), "one error per problem, joined")
			} else {
				t.Errorf("NewRegistry's error %T is not joined", err)
			}
		})
	}
}

func keep(rec es.RecordedEvent) (es.RecordedEvent, error) { return rec, nil }

func TestRegistryEncodeDecode(t *testing.T) {
	r, err := es.NewRegistry(es.Type[orderPlaced]("OrderPlaced"), es.Type[orderShipped]("OrderShipped"))
	require.NoError(t, err)
	assert.Equal(t, []string{"OrderPlaced", "OrderShipped"}, r.Names())

	for _, ev := range []any{orderPlaced{OrderID: "o-1", Amount: 5}, &orderPlaced{OrderID: "o-1", Amount: 5}} {
		ed, err := r.Encode(t.Context(), ev)
		require.NoError(t, err)
		assert.Equal(t, "OrderPlaced", ed.Type)
		assert.Equal(t, es.ContentTypeJSON, ed.ContentType)
		assert.JSONEq(t, `{"orderId":"o-1","amount":5}`, string(ed.Data))
		assert.Nil(t, ed.Metadata, "no metadata without metadata in the context")

		got, err := r.Decode(es.RecordedEvent{Type: ed.Type, ContentType: ed.ContentType, Data: ed.Data})
		require.NoError(t, err)
		assert.Equal(t, orderPlaced{OrderID: "o-1", Amount: 5}, got, "Decode returns a value, not a pointer")
	}

	t.Run("Name", func(t *testing.T) {
		name, err := r.Name(&orderShipped{})
		require.NoError(t, err)
		assert.Equal(t, "OrderShipped", name)
		_, err = r.Name(struct{}{})
		require.ErrorIs(t, err, es.ErrUnknownEventType)
		_, err = r.Name(nil)
		require.ErrorIs(t, err, es.ErrUnknownEventType)
	})
	t.Run("EncodeUnknown", func(t *testing.T) {
		_, err := r.Encode(t.Context(), "a string")
		require.ErrorIs(t, err, es.ErrUnknownEventType)
	})
	t.Run("EncodeMetadata", func(t *testing.T) {
		ctx := es.WithMetadataValue(es.WithCorrelationID(t.Context(), "corr"), "tenant", "acme")
		ed, err := r.Encode(ctx, orderShipped{OrderID: "o-1"})
		require.NoError(t, err)
		assert.JSONEq(t, `{"$correlationId":"corr","tenant":"acme"}`, string(ed.Metadata))
	})
	t.Run("EncodeMetadataInvalidUTF8", func(t *testing.T) {
		for _, ctx := range []context.Context{
			es.WithCorrelationID(t.Context(), "corr-\xff"),
			es.WithCausationID(t.Context(), "\xe2\x82"),
			es.WithMetadataValue(t.Context(), "tenant", "\xffacme"),
			es.WithMetadataValue(t.Context(), "\xff", "acme"),
		} {
			_, err := r.Encode(ctx, orderShipped{OrderID: "o-1"})
			require.ErrorIs(t, err, es.ErrInvalidArgument, "metadata that is not valid UTF-8 is not stored altered")
			assert.ErrorContains(t, err, `es: encode metadata of "OrderShipped"`)
			assert.ErrorContains(t, err, "not valid UTF-8")
		}
	})
	t.Run("EncodeNewID", func(t *testing.T) {
		a, err := r.Encode(t.Context(), orderShipped{})
		require.NoError(t, err)
		b, err := r.Encode(t.Context(), orderShipped{})
		require.NoError(t, err)
		assert.NotEqual(t, uuid.Nil, a.ID)
		assert.NotEqual(t, a.ID, b.ID)
	})
	t.Run("EmptyContentTypeDecodes", func(t *testing.T) {
		got, err := r.Decode(es.RecordedEvent{Type: "OrderShipped", Data: []byte(`{"carrier":"ups"}`)})
		require.NoError(t, err)
		assert.Equal(t, orderShipped{Carrier: "ups"}, got)
	})
}

func TestRegistryDecodeError(t *testing.T) {
	r, err := es.NewRegistry(es.Type[orderPlaced]("OrderPlaced"))
	require.NoError(t, err)
	base := es.RecordedEvent{ID: uuid.New(), Stream: "order-1", Revision: 7, ContentType: es.ContentTypeJSON}

	t.Run("UnknownType", func(t *testing.T) {
		rec := base
		rec.Type, rec.Data = "OrderCancelled", []byte(`{}`)
		v, err := r.Decode(rec)
		assert.Nil(t, v)
		var de *es.DecodeError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, es.DecodeError{Stream: "order-1", Revision: 7, Type: "OrderCancelled", Err: es.ErrUnknownEventType}, *de)
		require.ErrorIs(t, err, es.ErrUnknownEventType)
		assert.Equal(t, `es: decode event 7 of stream "order-1" (type "OrderCancelled"): es: unknown event type`, err.Error())
	})
	t.Run("BadPayload", func(t *testing.T) {
		rec := base
		rec.Type, rec.Data = "OrderPlaced", []byte(`{"amount":"five"}`)
		_, err := r.Decode(rec)
		var de *es.DecodeError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "order-1", de.Stream)
		assert.Equal(t, uint64(7), de.Revision)
		assert.Equal(t, "OrderPlaced", de.Type)
		var typeErr *json.UnmarshalTypeError
		require.ErrorAs(t, err, &typeErr, "the codec's error is wrapped")
		assert.NotErrorIs(t, err, es.ErrUnknownEventType)
	})
	t.Run("NotJSON", func(t *testing.T) {
		rec := base
		rec.Type, rec.Data = "OrderPlaced", []byte(`{`)
		_, err := r.Decode(rec)
		var syntaxErr *json.SyntaxError
		require.True(t, errors.As(err, &syntaxErr) || strings.Contains(err.Error(), "unexpected end"), "got %v", err)
		var de *es.DecodeError
		require.ErrorAs(t, err, &de)
	})
	t.Run("WrongContentType", func(t *testing.T) {
		rec := base
		rec.Type, rec.ContentType, rec.Data = "OrderPlaced", es.ContentTypeBinary, []byte(`{}`)
		_, err := r.Decode(rec)
		var de *es.DecodeError
		require.ErrorAs(t, err, &de)
		assert.Contains(t, err.Error(), "content type")
	})
	t.Run("UpcasterFails", func(t *testing.T) {
		boom := errors.New("boom")
		r, err := es.NewRegistry(es.Type[orderPlaced]("OrderPlaced"),
			es.Upcast("OrderPlaced", func(es.RecordedEvent) (es.RecordedEvent, error) { return es.RecordedEvent{}, boom }))
		require.NoError(t, err)
		rec := base
		rec.Type, rec.Data = "OrderPlaced", []byte(`{}`)
		_, err = r.Decode(rec)
		require.ErrorIs(t, err, boom)
		var de *es.DecodeError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "OrderPlaced", de.Type, "the stored type")
	})
}

func TestRegistryCodec(t *testing.T) {
	r, err := es.NewRegistry(es.WithCodec(binaryCodec{}), es.Type[note]("Note"))
	require.NoError(t, err)
	ed, err := r.Encode(t.Context(), note("hello"))
	require.NoError(t, err)
	assert.Equal(t, es.ContentTypeBinary, ed.ContentType)
	assert.Equal(t, []byte("hello"), ed.Data)
	got, err := r.Decode(es.RecordedEvent{Type: "Note", ContentType: es.ContentTypeBinary, Data: []byte("hi")})
	require.NoError(t, err)
	assert.Equal(t, note("hi"), got)
	_, err = r.Decode(es.RecordedEvent{Type: "Note", ContentType: es.ContentTypeJSON, Data: []byte(`"hi"`)})
	var de *es.DecodeError
	require.ErrorAs(t, err, &de, "a JSON event does not decode with a binary codec")
}

// Version 1 had "OrderCreated" with a total in cents under "total"; version 2
// renamed it "OrderPlacedV2" with "amountCents"; version 3 is "OrderPlaced"
// with "amount" in whole units.
func TestRegistryUpcastChain(t *testing.T) {
	var calls []string
	rename := func(from, to, oldKey, newKey string, scale int) es.Upcaster {
		return func(rec es.RecordedEvent) (es.RecordedEvent, error) {
			calls = append(calls, from)
			var m map[string]any
			if err := json.Unmarshal(rec.Data, &m); err != nil {
				return rec, err
			}
			m[newKey] = int(m[oldKey].(float64)) / scale
			delete(m, oldKey)
			data, err := json.Marshal(m)
			// An upcaster that changes identity fields has no effect on them.
			return es.RecordedEvent{ID: uuid.New(), Stream: "other", Revision: 99, Type: to, ContentType: rec.ContentType, Data: data}, err
		}
	}
	r, err := es.NewRegistry(
		es.Type[orderPlaced]("OrderPlaced"),
		es.Upcast("OrderCreated", rename("OrderCreated", "OrderPlacedV2", "total", "amountCents", 1)),
		es.Upcast("OrderPlacedV2", rename("OrderPlacedV2", "OrderPlaced", "amountCents", "amount", 100)),
	)
	require.NoError(t, err)

	created := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := es.RecordedEvent{ID: uuid.New(), Stream: "order-1", Revision: 3, Position: es.Position{Commit: 9, Prepare: 9}, Created: created,
		Type: "OrderCreated", ContentType: es.ContentTypeJSON, Data: []byte(`{"orderId":"o-1","total":1200}`)}
	up, err := r.Upcast(rec)
	require.NoError(t, err)
	assert.Equal(t, []string{"OrderCreated", "OrderPlacedV2"}, calls, "the chain runs in order")
	assert.Equal(t, "OrderPlaced", up.Type)
	assert.Equal(t, rec.ID, up.ID, "Upcast keeps the ID")
	assert.Equal(t, rec.Stream, up.Stream)
	assert.Equal(t, rec.Revision, up.Revision)
	assert.Equal(t, rec.Position, up.Position)
	assert.Equal(t, rec.Created, up.Created)

	got, err := r.Decode(rec)
	require.NoError(t, err)
	assert.Equal(t, orderPlaced{OrderID: "o-1", Amount: 12}, got)

	// An event of the current version is not upcast.
	calls = nil
	got, err = r.Decode(es.RecordedEvent{Type: "OrderPlaced", Data: []byte(`{"orderId":"o-2","amount":3}`)})
	require.NoError(t, err)
	assert.Equal(t, orderPlaced{OrderID: "o-2", Amount: 3}, got)
	assert.Empty(t, calls)

	assert.True(t, r.HasUpcaster("OrderCreated"))
	assert.True(t, r.HasUpcaster("OrderPlacedV2"))
	assert.False(t, r.HasUpcaster("OrderPlaced"), "the end of the chain has no upcaster")
	assert.False(t, r.HasUpcaster("Unknown"))
}

func TestRegistryUpcastPayloadOnly(t *testing.T) {
	// The payload once had "amount" as a string; the upcaster keeps the type
	// and must leave current payloads alone.
	calls := 0
	r, err := es.NewRegistry(
		es.Type[orderPlaced]("OrderPlaced"),
		es.Upcast("OrderPlaced", func(rec es.RecordedEvent) (es.RecordedEvent, error) {
			calls++
			var old struct {
				OrderID string `json:"orderId"`
				Amount  any    `json:"amount"`
			}
			if err := json.Unmarshal(rec.Data, &old); err != nil {
				return rec, err
			}
			if s, ok := old.Amount.(string); ok {
				rec.Data = fmt.Appendf(nil, `{"orderId":%q,"amount":%s}`, old.OrderID, s)
			}
			return rec, nil
		}),
	)
	require.NoError(t, err)
	for _, data := range []string{`{"orderId":"o-1","amount":"7"}`, `{"orderId":"o-1","amount":7}`} {
		calls = 0
		got, err := r.Decode(es.RecordedEvent{Type: "OrderPlaced", Data: []byte(data)})
		require.NoError(t, err, data)
		assert.Equal(t, orderPlaced{OrderID: "o-1", Amount: 7}, got, data)
		assert.Equal(t, 1, calls, "a payload-only upcaster runs once per event")
	}
}

func TestRegistryUpcastCycle(t *testing.T) {
	// A → B → A stops: each upcaster runs at most once per event.
	to := func(typ string) es.Upcaster {
		return func(rec es.RecordedEvent) (es.RecordedEvent, error) { rec.Type = typ; return rec, nil }
	}
	r, err := es.NewRegistry(es.Upcast("A", to("B")), es.Upcast("B", to("A")))
	require.NoError(t, err)
	up, err := r.Upcast(es.RecordedEvent{Type: "A"})
	require.NoError(t, err)
	assert.Equal(t, "A", up.Type)
	_, err = r.Decode(es.RecordedEvent{Type: "A"})
	require.ErrorIs(t, err, es.ErrUnknownEventType)
}
