package es_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"github.com/eventfold/eventfold/es/memstore"
)

func TestStreamMetadataJSON(t *testing.T) {
	cases := []struct {
		name string
		m    es.StreamMetadata
		json string
	}{
		{"Zero", es.StreamMetadata{}, `{}`},
		{"All", es.StreamMetadata{MaxCount: 10, MaxAge: 90 * time.Second, TruncateBefore: 3,
			Custom: map[string]json.RawMessage{"$acl": json.RawMessage(`{"$r":"admin"}`), "tenant": json.RawMessage(`"acme"`)}},
			`{"$maxCount":10,"$maxAge":90,"$tb":3,"$acl":{"$r":"admin"},"tenant":"acme"}`},
		{"Deleted", es.StreamMetadata{TruncateBefore: esdriver.DeletedTruncateBefore}, `{"$tb":9223372036854775807}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := json.Marshal(c.m)
			require.NoError(t, err)
			assert.JSONEq(t, c.json, string(data))
			var back es.StreamMetadata
			require.NoError(t, json.Unmarshal(data, &back))
			assert.Equal(t, c.m, back)
		})
	}

	t.Run("MaxAgeInWholeSeconds", func(t *testing.T) {
		data, err := json.Marshal(es.StreamMetadata{MaxAge: 1500 * time.Millisecond})
		require.NoError(t, err)
		assert.JSONEq(t, `{"$maxAge":1}`, string(data))
	})
	t.Run("FromOtherClients", func(t *testing.T) {
		var m es.StreamMetadata
		require.NoError(t, json.Unmarshal([]byte(`{"$maxCount": 5, "$cacheControl": 60, "$maxAge": 3600}`), &m))
		assert.Equal(t, uint64(5), m.MaxCount)
		assert.Equal(t, time.Hour, m.MaxAge)
		assert.JSONEq(t, `60`, string(m.Custom["$cacheControl"]))
	})

	invalid := map[string]string{
		"NotJSON":         `{`,
		"Null":            `null`,
		"Array":           `[]`,
		"Number":          `1`,
		"NegativeCount":   `{"$maxCount":-1}`,
		"StringCount":     `{"$maxCount":"5"}`,
		"FractionalTB":    `{"$tb":1.5}`,
		"NegativeAge":     `{"$maxAge":-1}`,
		"AgeTooLong":      `{"$maxAge":9223372037}`,
		"CountOverflows":  `{"$maxCount":18446744073709551616}`,
		"TrailingGarbage": `{} x`,
	}
	for name, in := range invalid {
		t.Run("Invalid/"+name, func(t *testing.T) {
			m := es.StreamMetadata{MaxCount: 9}
			require.Error(t, json.Unmarshal([]byte(in), &m))
			assert.Equal(t, es.StreamMetadata{MaxCount: 9}, m, "a failed decode leaves the value alone")
		})
	}
	t.Run("AgeAtLimit", func(t *testing.T) {
		var m es.StreamMetadata
		require.NoError(t, json.Unmarshal([]byte(`{"$maxAge":9223372036}`), &m))
		assert.Equal(t, 9223372036*time.Second, m.MaxAge)
	})
}

func TestSetGetStreamMetadata(t *testing.T) {
	ctx := t.Context()
	store := memstore.MustNew()

	_, _, err := es.GetStreamMetadata(ctx, store, "")
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, err = es.SetStreamMetadata(ctx, store, "", es.Any, es.StreamMetadata{})
	require.ErrorIs(t, err, es.ErrInvalidArgument)

	m, rev, err := es.GetStreamMetadata(ctx, store, "order-1")
	require.NoError(t, err)
	assert.Equal(t, es.StreamMetadata{}, m)
	assert.Equal(t, es.NoStream, rev)

	_, err = es.SetStreamMetadata(ctx, store, "order-1", es.NoStream, es.StreamMetadata{MaxCount: 3})
	require.NoError(t, err)
	_, err = es.SetStreamMetadata(ctx, store, "order-1", es.Exact(0), es.StreamMetadata{MaxCount: 4})
	require.NoError(t, err)
	m, rev, err = es.GetStreamMetadata(ctx, store, "order-1")
	require.NoError(t, err)
	assert.Equal(t, es.StreamMetadata{MaxCount: 4}, m)
	assert.Equal(t, es.Exact(1), rev)
	_, err = es.SetStreamMetadata(ctx, store, "order-1", rev, es.StreamMetadata{MaxCount: 5})
	require.NoError(t, err, "the revision read is the one a conditional write expects")

	_, err = es.SetStreamMetadata(ctx, store, "order-1", es.Exact(0), es.StreamMetadata{MaxCount: 5})
	require.ErrorIs(t, err, es.ErrWrongExpectedVersion)

	// Metadata some other client wrote that is not an object.
	_, err = store.Append(ctx, es.MetadataStream("order-2"), es.NoStream, es.EventData{Type: "other", Data: []byte(`[1]`)})
	require.NoError(t, err)
	_, _, err = es.GetStreamMetadata(ctx, store, "order-2")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"order-2"`)
}
