package es_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

func TestMetadataJSON(t *testing.T) {
	t.Run("RoundTrip", func(t *testing.T) {
		m := es.Metadata{CorrelationID: "c", CausationID: "d", Values: map[string]string{"tenant": "acme"}}
		data, err := json.Marshal(m)
		require.NoError(t, err)
		assert.JSONEq(t, `{"$correlationId":"c","$causationId":"d","tenant":"acme"}`, string(data))
		var back es.Metadata
		require.NoError(t, json.Unmarshal(data, &back))
		assert.Equal(t, m, back)
	})
	t.Run("Zero", func(t *testing.T) {
		data, err := json.Marshal(es.Metadata{})
		require.NoError(t, err)
		assert.JSONEq(t, `{}`, string(data))
	})
	t.Run("ValuesDoNotOverrideIDs", func(t *testing.T) {
		m := es.Metadata{CorrelationID: "c", Values: map[string]string{es.MetadataCorrelationID: "x", es.MetadataCausationID: "y", "k": "v"}}
		data, err := json.Marshal(m)
		require.NoError(t, err)
		assert.JSONEq(t, `{"$correlationId":"c","k":"v"}`, string(data))
		assert.Len(t, m.Values, 3, "MarshalJSON does not modify Values")
	})
	t.Run("NonStringValues", func(t *testing.T) {
		var m es.Metadata
		require.NoError(t, json.Unmarshal([]byte(`{"$correlationId":"c","n":42,"o":{"a":[1]},"b":true}`), &m))
		assert.Equal(t, "c", m.CorrelationID)
		assert.Equal(t, map[string]string{"n": "42", "o": `{"a":[1]}`, "b": "true"}, m.Values)
	})
	t.Run("InvalidUTF8", func(t *testing.T) {
		// encoding/json would store U+FFFD instead: an error, not a change.
		for name, m := range map[string]es.Metadata{
			"CorrelationID": {CorrelationID: "c\xff"},
			"CausationID":   {CausationID: "\xc3("},
			"Value":         {Values: map[string]string{"tenant": "ac\xffme"}},
			"Key":           {Values: map[string]string{"ten\xfeant": "acme"}},
		} {
			_, err := json.Marshal(m)
			require.Errorf(t, err, "%s", name)
			assert.ErrorIsf(t, err, es.ErrInvalidArgument, "%s", name)
			assert.ErrorContainsf(t, err, "not valid UTF-8", "%s", name)
		}
		// Values that are never encoded are not checked.
		data, err := json.Marshal(es.Metadata{CorrelationID: "c", Values: map[string]string{es.MetadataCorrelationID: "\xff"}})
		require.NoError(t, err)
		assert.JSONEq(t, `{"$correlationId":"c"}`, string(data))
	})
	t.Run("InvalidUTF8InNonStringValue", func(t *testing.T) {
		// A value that is not a string is kept as its JSON text, with
		// invalid bytes replaced as encoding/json does in strings, so that
		// what decodes encodes.
		var m es.Metadata
		require.NoError(t, json.Unmarshal([]byte("{\"o\":{\"a\":\"\xff\xfe\"},\"s\":\"\xff\"}"), &m))
		assert.Equal(t, map[string]string{"o": "{\"a\":\"\ufffd\ufffd\"}", "s": "\ufffd"}, m.Values)
		_, err := json.Marshal(m)
		require.NoError(t, err)
	})
	t.Run("Invalid", func(t *testing.T) {
		for _, in := range []string{`[]`, `"x"`, `{`, `1`} {
			var m es.Metadata
			assert.Errorf(t, json.Unmarshal([]byte(in), &m), "%s", in)
		}
	})
}

func TestParseMetadata(t *testing.T) {
	m, err := es.ParseMetadata(nil)
	require.NoError(t, err)
	assert.Equal(t, es.Metadata{}, m)
	m, err = es.ParseMetadata([]byte(`{"$causationId":"x"}`))
	require.NoError(t, err)
	assert.Equal(t, es.Metadata{CausationID: "x"}, m)
	_, err = es.ParseMetadata([]byte(`not json`))
	require.Error(t, err)
}

func TestMetadataContext(t *testing.T) {
	ctx := t.Context()
	assert.Equal(t, es.Metadata{}, es.MetadataFromContext(ctx))

	ctx1 := es.WithCorrelationID(ctx, "corr")
	ctx2 := es.WithCausationID(ctx1, "cause")
	ctx3 := es.WithMetadataValue(ctx2, "tenant", "acme")
	ctx4 := es.WithMetadataValue(ctx3, "user", "ann")
	ctx5 := es.WithMetadataValue(ctx3, "user", "bob")

	assert.Equal(t, es.Metadata{CorrelationID: "corr"}, es.MetadataFromContext(ctx1))
	assert.Equal(t, es.Metadata{CorrelationID: "corr", CausationID: "cause"}, es.MetadataFromContext(ctx2))
	assert.Equal(t, es.Metadata{CorrelationID: "corr", CausationID: "cause", Values: map[string]string{"tenant": "acme"}}, es.MetadataFromContext(ctx3))
	assert.Equal(t, map[string]string{"tenant": "acme", "user": "ann"}, es.MetadataFromContext(ctx4).Values, "contexts do not share values")
	assert.Equal(t, map[string]string{"tenant": "acme", "user": "bob"}, es.MetadataFromContext(ctx5).Values, "contexts do not share values")
	assert.Equal(t, es.Metadata{}, es.MetadataFromContext(ctx), "the parent is unchanged")

	values := map[string]string{"k": "v"}
	ctx6 := es.ContextWithMetadata(ctx, es.Metadata{CorrelationID: "c", Values: values})
	values["k"] = "changed"
	assert.Equal(t, "v", es.MetadataFromContext(ctx6).Values["k"], "ContextWithMetadata copies Values")
}

func TestCausedBy(t *testing.T) {
	id := uuid.MustParse("0b5c5b66-8d6c-4d3a-9bd0-1b1f0c3c1e01")
	cases := []struct {
		name     string
		metadata string
		want     es.Metadata
	}{
		{"ContinuesTheChain", `{"$correlationId":"corr","$causationId":"older","tenant":"acme"}`,
			es.Metadata{CorrelationID: "corr", CausationID: id.String(), Values: map[string]string{"tenant": "acme"}}},
		{"StartsAChain", ``,
			es.Metadata{CorrelationID: id.String(), CausationID: id.String()}},
		{"NoCorrelation", `{"tenant":"acme"}`,
			es.Metadata{CorrelationID: id.String(), CausationID: id.String(), Values: map[string]string{"tenant": "acme"}}},
		{"UnparsableMetadata", `[1,2]`,
			es.Metadata{CorrelationID: id.String(), CausationID: id.String()}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := es.WithMetadataValue(context.Background(), "ignored", "x")
			ctx := es.CausedBy(parent, es.RecordedEvent{ID: id, Metadata: []byte(c.metadata)})
			assert.Equal(t, c.want, es.MetadataFromContext(ctx))
		})
	}
}
