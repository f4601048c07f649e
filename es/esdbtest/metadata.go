package esdbtest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// streamMeta is the part of a stream's metadata that reads enforce. raw
// keeps every key so that a recreate can rewrite `$tb` and keep the rest.
type streamMeta struct {
	maxCount *uint64
	maxAge   *time.Duration
	tb       *uint64
	raw      map[string]json.RawMessage
}

// parseStreamMeta reads a `$metadata` event. Malformed metadata, like in
// EventStoreDB, is treated as no metadata.
func parseStreamMeta(data []byte) streamMeta {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return streamMeta{}
	}
	m := streamMeta{raw: raw}
	// EventStoreDB ignores a $maxCount or $maxAge that is not positive.
	if v, ok := metaUint(raw, "$maxCount"); ok && v > 0 {
		m.maxCount = &v
	}
	if v, ok := metaUint(raw, "$maxAge"); ok && v > 0 && v <= uint64(1<<63-1)/uint64(time.Second) {
		d := time.Duration(v) * time.Second
		m.maxAge = &d
	}
	if v, ok := metaUint(raw, "$tb"); ok {
		m.tb = &v
	}
	return m
}

// metaUint reads a non-negative integer key.
func metaUint(raw map[string]json.RawMessage, key string) (uint64, bool) {
	v, ok := raw[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// withTruncateBefore returns the metadata JSON with `$tb` set to tb and every
// other key kept.
func (m streamMeta) withTruncateBefore(tb uint64) []byte {
	out := make(map[string]json.RawMessage, len(m.raw)+1)
	for k, v := range m.raw {
		out[k] = v
	}
	out["$tb"] = json.RawMessage(strconv.FormatUint(tb, 10))
	data, err := json.Marshal(out)
	if err != nil { // cannot happen: every value is valid JSON
		return []byte(`{"$tb":` + strconv.FormatUint(tb, 10) + `}`)
	}
	return data
}
