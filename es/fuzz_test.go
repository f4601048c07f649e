package es_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

// FuzzDecode feeds Registry.Decode arbitrary type names, content types and
// payloads: it must return a value of the registered type or a *DecodeError
// naming the event, and never panic.
func FuzzDecode(f *testing.F) {
	f.Add("OrderPlaced", es.ContentTypeJSON, []byte(`{"orderId":"o-1","amount":5}`))
	f.Add("OrderPlaced", "", []byte(`{"amount":"x"}`))
	f.Add("OrderPlaced", es.ContentTypeBinary, []byte{0, 1})
	f.Add("OrderCreated", es.ContentTypeJSON, []byte(`{"orderId":"o-1","total":1200}`))
	f.Add("OrderCreated", es.ContentTypeJSON, []byte(`{"total":"nan"}`))
	f.Add("Count", es.ContentTypeJSON, []byte(`42`))
	f.Add("Tags", es.ContentTypeJSON, []byte(`["a","b"]`))
	f.Add("Labels", es.ContentTypeJSON, []byte(`{"a":"b"}`))
	f.Add("Unknown", "text/plain", []byte(nil))
	f.Add("", "", []byte(`null`))

	type tags []string
	type labels map[string]string
	type count int
	r, err := es.NewRegistry(
		es.Type[orderPlaced]("OrderPlaced"),
		es.Type[count]("Count"),
		es.Type[tags]("Tags"),
		es.Type[labels]("Labels"),
		// An upcaster that parses the payload, as real ones do.
		es.Upcast("OrderCreated", func(rec es.RecordedEvent) (es.RecordedEvent, error) {
			var old struct {
				OrderID string  `json:"orderId"`
				Total   float64 `json:"total"`
			}
			if err := json.Unmarshal(rec.Data, &old); err != nil {
				return rec, err
			}
			data, err := json.Marshal(orderPlaced{OrderID: old.OrderID, Amount: int(old.Total / 100)})
			rec.Type, rec.Data = "OrderPlaced", data
			return rec, err
		}),
	)
	require.NoError(f, err)
	types := map[string]reflect.Type{
		"OrderPlaced":  reflect.TypeFor[orderPlaced](),
		"OrderCreated": reflect.TypeFor[orderPlaced](),
		"Count":        reflect.TypeFor[count](),
		"Tags":         reflect.TypeFor[tags](),
		"Labels":       reflect.TypeFor[labels](),
	}

	f.Fuzz(func(t *testing.T, typ, contentType string, data []byte) {
		rec := es.RecordedEvent{Stream: "s", Revision: 3, Type: typ, ContentType: contentType, Data: data}
		v, err := r.Decode(rec)
		if err != nil {
			assert.Nil(t, v)
			var de *es.DecodeError
			require.ErrorAs(t, err, &de, "every Decode error is a *DecodeError")
			assert.Equal(t, rec.Stream, de.Stream)
			assert.Equal(t, rec.Revision, de.Revision)
			// The type named is the stored one, even when decoding fails
			// after an upcaster changed it.
			assert.Equal(t, rec.Type, de.Type)
			require.Error(t, de.Err)
			_, known := types[typ]
			if !known {
				assert.ErrorIs(t, err, es.ErrUnknownEventType)
			}
			return
		}
		want, ok := types[typ]
		require.Truef(t, ok, "Decode of unregistered type %q returned %T", typ, v)
		assert.Equal(t, want, reflect.TypeOf(v), "Decode returns a value of the registered type")
	})
}

// FuzzParseExpectedRevision checks that ParseExpectedRevision never panics,
// fails only with ErrInvalidArgument, and that parsing what an expected
// revision formats to gives it back.
func FuzzParseExpectedRevision(f *testing.F) {
	for _, s := range []string{"any", "no_stream", "stream_exists", "No-Stream", " any ", "0", "42", "-1", "18446744073709551615", "18446744073709551616", "", "1e3", "+1"} {
		f.Add(s, uint64(0), uint8(0))
	}
	f.Add("", uint64(1<<64-1), uint8(3))
	f.Add("", uint64(7), uint8(1))

	f.Fuzz(func(t *testing.T, s string, n uint64, kind uint8) {
		// Parse arbitrary input.
		r, err := es.ParseExpectedRevision(s)
		if err != nil {
			require.ErrorIs(t, err, es.ErrInvalidArgument)
		} else {
			requireRevisionRoundTrip(t, r)
		}
		// parse(format(x)) == x for every expected revision x.
		x := []es.ExpectedRevision{es.Any, es.NoStream, es.StreamExists, es.Exact(n)}[kind%4]
		requireRevisionRoundTrip(t, x)
	})
}

func requireRevisionRoundTrip(t *testing.T, x es.ExpectedRevision) {
	t.Helper()
	text, err := x.MarshalText()
	require.NoError(t, err)
	got, err := es.ParseExpectedRevision(string(text))
	require.NoErrorf(t, err, "parse %q", text)
	require.Equalf(t, x, got, "parse(format(%v))", x)
	got, err = es.ParseExpectedRevision(x.String())
	require.NoErrorf(t, err, "parse %q", x.String())
	require.Equalf(t, x, got, "parse(String(%v))", x)
}

// FuzzParsePosition checks that ParsePosition never panics, fails only with
// ErrInvalidArgument, and that parsing what a position formats to gives it
// back.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"start", "end", "C:0/P:0", "C:1/P:1", "C:120/P:97", "C:18446744073709551615/P:18446744073709551615", "C:1", "C:-1/P:0", "C:1/P:2/P:3", "", "C:+1/P:1"} {
		f.Add(s, uint64(0), uint64(0))
	}
	f.Add("", uint64(1<<64-1), uint64(1<<64-1))
	f.Add("", uint64(1<<64-1), uint64(0))
	f.Add("", uint64(10), uint64(3))

	f.Fuzz(func(t *testing.T, s string, commit, prepare uint64) {
		p, err := es.ParsePosition(s)
		if err != nil {
			require.ErrorIs(t, err, es.ErrInvalidArgument)
		} else {
			requirePositionRoundTrip(t, p)
		}
		requirePositionRoundTrip(t, es.Position{Commit: commit, Prepare: prepare})
	})
}

func requirePositionRoundTrip(t *testing.T, p es.Position) {
	t.Helper()
	got, err := es.ParsePosition(p.String())
	require.NoErrorf(t, err, "parse %q", p.String())
	require.Equalf(t, p, got, "parse(format(%#v))", p)
	require.Equal(t, 0, p.Compare(got))
}

// FuzzStreamMetadataUnmarshalJSON checks that decoding arbitrary JSON as
// stream metadata never panics, and that what decodes encodes and decodes
// back to the same metadata.
func FuzzStreamMetadataUnmarshalJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"$maxCount":10,"$maxAge":90,"$tb":3}`, `{"$tb":9223372036854775807}`,
		`{"$acl":{"$r":"admin"},"tenant":"acme","n":null}`, `{"$maxAge":9223372036}`, `{"$maxAge":9223372037}`,
		`{"$maxCount":-1}`, `null`, `[]`, `{"a" : [1, 2 ]}`, `{"$maxCount":0,"$tb":0,"$maxAge":0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m es.StreamMetadata
		if err := json.Unmarshal(data, &m); err != nil {
			return
		}
		enc, err := json.Marshal(m)
		require.NoError(t, err, "metadata that decodes encodes")
		var back es.StreamMetadata
		require.NoErrorf(t, json.Unmarshal(enc, &back), "decode %s", enc)
		assert.Equal(t, m.MaxCount, back.MaxCount, "MaxCount")
		assert.Equal(t, m.MaxAge, back.MaxAge, "MaxAge")
		assert.Equal(t, m.TruncateBefore, back.TruncateBefore, "TruncateBefore")
		require.Len(t, back.Custom, len(m.Custom), "custom keys")
		for k, v := range m.Custom {
			require.Contains(t, back.Custom, k)
			// Not assert.JSONEq: it decodes numbers as float64 and fails on
			// any beyond its range ({"":1e1000}), which the metadata keeps
			// as they were.
			assert.Equalf(t, decodeExact(t, v), decodeExact(t, back.Custom[k]), "custom key %q: %s, then %s", k, v, back.Custom[k])
		}
		again, err := json.Marshal(back)
		require.NoError(t, err)
		assert.Equal(t, string(enc), string(again), "encoding is stable")
	})
}

// decodeExact decodes JSON keeping each number as its text (json.Number),
// so that values compare exactly, whatever their size.
func decodeExact(t *testing.T, data []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	require.NoErrorf(t, d.Decode(&v), "decode %s", data)
	_, err := d.Token()
	require.ErrorIsf(t, err, io.EOF, "%s is one JSON value", data)
	return v
}

// FuzzParseMetadata checks ParseMetadata, which reads plain metadata
// without encoding/json, against Metadata.UnmarshalJSON: the same metadata,
// or an error from both. What parses also encodes (it is valid UTF-8, as
// Metadata.MarshalJSON requires) and parses back to the same metadata.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte("{\"a\":\"\xff\",\"o\":{\"b\xfe\":[\"\xc3(\"]}}"))
	f.Add([]byte(`{"$causationId":"x","$correlationId":"y"}`))
	f.Add([]byte(` { "tenant" : "acme" , "$correlationId":"c" } `))
	f.Add([]byte(`{"a":"1","a":"2","$causationId":"x","$causationId":"z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":1,"b":"é","c":"\u00e9\n"}`))
	f.Add([]byte(`{"a":"1",}`))
	f.Add([]byte(`{"a":"1"} x`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return // empty metadata is the zero Metadata, not JSON
		}
		got, err := es.ParseMetadata(data)
		var want es.Metadata
		wantErr := json.Unmarshal(data, &want)
		if wantErr != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		assert.Equal(t, want, got)
		enc, err := json.Marshal(got)
		require.NoError(t, err, "metadata that parses encodes")
		back, err := es.ParseMetadata(enc)
		require.NoErrorf(t, err, "parse %s", enc)
		assert.Equal(t, got, back, "parse(encode(m)) == m")
	})
}
