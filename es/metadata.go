package es

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Keys of the metadata that EventStoreDB's own tools understand.
const (
	MetadataCorrelationID = "$correlationId"
	MetadataCausationID   = "$causationId"
)

// Metadata is the user metadata of an event: the correlation ID shared by a
// whole chain of commands and events, the causation ID of the message that
// caused the event, and free string pairs. It is stored as one flat JSON
// object: {"$correlationId": "…", "$causationId": "…", "tenant": "acme"}.
type Metadata struct {
	CorrelationID string
	CausationID   string
	// Values are the other keys. Keys in Values never override
	// CorrelationID and CausationID.
	Values map[string]string
}

// MarshalJSON encodes the metadata as one flat JSON object. A key or value
// that is not valid UTF-8 is an error wrapping [ErrInvalidArgument]:
// encoding/json would replace its bytes with U+FFFD and store something else
// than what was given.
func (m Metadata) MarshalJSON() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	obj := make(map[string]string, len(m.Values)+2)
	maps.Copy(obj, m.Values)
	delete(obj, MetadataCorrelationID)
	delete(obj, MetadataCausationID)
	if m.CorrelationID != "" {
		obj[MetadataCorrelationID] = m.CorrelationID
	}
	if m.CausationID != "" {
		obj[MetadataCausationID] = m.CausationID
	}
	return json.Marshal(obj)
}

// validate reports the first key or value of m, in a stable order, that is
// not valid UTF-8.
func (m Metadata) validate() error {
	if !utf8.ValidString(m.CorrelationID) {
		return invalidUTF8("correlation ID", m.CorrelationID)
	}
	if !utf8.ValidString(m.CausationID) {
		return invalidUTF8("causation ID", m.CausationID)
	}
	for _, k := range slices.Sorted(maps.Keys(m.Values)) {
		if k == MetadataCorrelationID || k == MetadataCausationID {
			continue // never encoded
		}
		if !utf8.ValidString(k) {
			return invalidUTF8("key", k)
		}
		if v := m.Values[k]; !utf8.ValidString(v) {
			return invalidUTF8(fmt.Sprintf("value of key %q", k), v)
		}
	}
	return nil
}

func invalidUTF8(what, s string) error {
	return fmt.Errorf("%w: metadata %s %q is not valid UTF-8", ErrInvalidArgument, what, s)
}

// UnmarshalJSON decodes a flat JSON object. Values that are not strings are
// kept as their JSON text. As encoding/json does in strings, each byte that
// is not part of valid UTF-8 becomes U+FFFD, so what decodes always
// encodes.
func (m *Metadata) UnmarshalJSON(data []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("es: metadata: %w", err)
	}
	var out Metadata
	for k, raw := range obj {
		s := validUTF8(raw)
		if len(raw) > 0 && raw[0] == '"' {
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("es: metadata: %s: %w", k, err)
			}
		}
		switch k {
		case MetadataCorrelationID:
			out.CorrelationID = s
		case MetadataCausationID:
			out.CausationID = s
		default:
			if out.Values == nil {
				out.Values = make(map[string]string)
			}
			out.Values[k] = s
		}
	}
	*m = out
	return nil
}

// validUTF8 returns b as a string with each byte that is not part of valid
// UTF-8 replaced by U+FFFD, as encoding/json decodes strings.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		sb.WriteRune(r) // utf8.RuneError (U+FFFD) for an invalid byte, n = 1
		b = b[n:]
	}
	return sb.String()
}

// ParseMetadata decodes an event's metadata. Empty metadata is the zero
// Metadata; metadata that is not a JSON object is an error.
func ParseMetadata(data []byte) (Metadata, error) {
	var m Metadata
	if len(data) == 0 {
		return m, nil
	}
	if m, ok := parseFlat(data); ok {
		return m, nil
	}
	err := json.Unmarshal(data, &m)
	return m, err
}

// parseFlat decodes the common shape of metadata without encoding/json: a
// JSON object whose keys and values are strings of printable ASCII without
// escapes. ok is false for anything else, which [Metadata.UnmarshalJSON]
// decodes; both give the same result where parseFlat succeeds.
func parseFlat(data []byte) (m Metadata, ok bool) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return m, false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return m, skipSpace(data, i+1) == len(data)
	}
	for {
		var k, v string
		if k, i, ok = flatString(data, i); !ok {
			return m, false
		}
		if i = skipSpace(data, i); i == len(data) || data[i] != ':' {
			return m, false
		}
		if v, i, ok = flatString(data, skipSpace(data, i+1)); !ok {
			return m, false
		}
		switch k {
		case MetadataCorrelationID:
			m.CorrelationID = v
		case MetadataCausationID:
			m.CausationID = v
		default:
			if m.Values == nil {
				m.Values = make(map[string]string)
			}
			m.Values[k] = v
		}
		if i = skipSpace(data, i); i == len(data) {
			return m, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return m, skipSpace(data, i+1) == len(data)
		default:
			return m, false
		}
	}
}

// flatString reads a JSON string at data[i] of printable ASCII without
// escapes, and returns it and the index after it.
func flatString(data []byte, i int) (string, int, bool) {
	if i == len(data) || data[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return string(data[i+1 : j]), j + 1, true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return "", i, false
		}
	}
	return "", i, false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

type metadataKey struct{}

// MetadataFromContext returns a copy of the metadata that ctx carries.
func MetadataFromContext(ctx context.Context) Metadata {
	m, _ := ctx.Value(metadataKey{}).(Metadata)
	m.Values = maps.Clone(m.Values)
	return m
}

// ContextWithMetadata returns a copy of ctx that carries m. [Registry.Encode]
// writes it into every event it encodes.
func ContextWithMetadata(ctx context.Context, m Metadata) context.Context {
	m.Values = maps.Clone(m.Values)
	return context.WithValue(ctx, metadataKey{}, m)
}

// WithCorrelationID returns a copy of ctx whose metadata has correlation ID id.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	m := MetadataFromContext(ctx)
	m.CorrelationID = id
	return ContextWithMetadata(ctx, m)
}

// WithCausationID returns a copy of ctx whose metadata has causation ID id.
func WithCausationID(ctx context.Context, id string) context.Context {
	m := MetadataFromContext(ctx)
	m.CausationID = id
	return ContextWithMetadata(ctx, m)
}

// WithMetadataValue returns a copy of ctx whose metadata has key set to value.
func WithMetadataValue(ctx context.Context, key, value string) context.Context {
	m := MetadataFromContext(ctx)
	if m.Values == nil {
		m.Values = make(map[string]string, 1)
	}
	m.Values[key] = value
	return context.WithValue(ctx, metadataKey{}, m)
}

// CausedBy returns a copy of ctx for the work that event e causes (a process
// manager reacting to it, say): the causation ID becomes e's ID, and the
// correlation ID e's correlation ID, or e's ID when it has none. Other values
// of e's metadata are carried over. Metadata that does not parse is ignored:
// the chain starts again from e.
func CausedBy(ctx context.Context, e RecordedEvent) context.Context {
	m, err := ParseMetadata(e.Metadata)
	if err != nil {
		m = Metadata{}
	}
	if m.CorrelationID == "" {
		m.CorrelationID = e.ID.String()
	}
	m.CausationID = e.ID.String()
	return context.WithValue(ctx, metadataKey{}, m)
}
