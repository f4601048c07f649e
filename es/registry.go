package es

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/google/uuid"
)

// ErrUnknownEventType means a [Registry] has no Go type for an event type name,
// or no name for a Go type.
var ErrUnknownEventType = errors.New("es: unknown event type")

// Codec encodes event payloads. [JSON] is the default; a Codec for
// Protocol Buffers or MessagePack plugs in with [WithCodec].
type Codec interface {
	// ContentType is the content type of what Marshal produces:
	// [ContentTypeJSON] or [ContentTypeBinary].
	ContentType() string
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a non-nil pointer.
	Unmarshal(data []byte, v any) error
}

// JSON is the [Codec] of encoding/json.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string                { return ContentTypeJSON }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Upcaster rewrites a stored event into its current form before it is
// decoded: a new type name, a changed payload. It returns the event
// unchanged in shape otherwise (keeping ID, stream, revision and position).
type Upcaster func(RecordedEvent) (RecordedEvent, error)

// Registry maps explicit, stable event type names to Go types, and encodes
// and decodes event payloads with a [Codec]. It is built once by
// [NewRegistry] and is safe for concurrent use.
type Registry struct {
	codec     Codec
	byName    map[string]decoder
	byType    map[reflect.Type]string
	upcasters map[string]Upcaster
}

// decoder decodes a payload into a value of one registered type.
type decoder struct {
	goType reflect.Type
	decode func(c Codec, data []byte) (any, error)
}

// RegistryOption configures a [Registry]: [Type], [Upcast] and [WithCodec].
// [NewRegistry] reports the errors of every invalid option together.
type RegistryOption func(*registryBuilder) error

type registryBuilder struct {
	r *Registry
}

// Type registers the Go type T under the stored type name name. Decoding an
// event of that name yields a value of type T (not a pointer); encoding
// accepts T or *T.
func Type[T any](name string) RegistryOption {
	return func(b *registryBuilder) error {
		t := reflect.TypeFor[T]()
		if err := validateName(name); err != nil {
			return fmt.Errorf("es: event type name for %v %s", t, err)
		}
		if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
			return fmt.Errorf("es: event type %q: register the value type, not %v", name, t)
		}
		if prev, ok := b.r.byName[name]; ok {
			return fmt.Errorf("es: event type %q registered twice (%v and %v)", name, prev.goType, t)
		}
		if prev, ok := b.r.byType[t]; ok {
			return fmt.Errorf("es: Go type %v registered twice (%q and %q)", t, prev, name)
		}
		b.r.byName[name] = decoder{goType: t, decode: func(c Codec, data []byte) (any, error) {
			var v T
			err := c.Unmarshal(data, &v)
			return v, err
		}}
		b.r.byType[t] = name
		return nil
	}
}

// Upcast registers fn to rewrite stored events of type name before they are
// decoded. An upcaster may change the type to another one that has an
// upcaster, so chains (v1 → v2 → v3) work; see [Registry.Upcast].
func Upcast(name string, fn Upcaster) RegistryOption {
	return func(b *registryBuilder) error {
		switch {
		case fn == nil:
			return fmt.Errorf("es: upcaster for %q is nil", name)
		case b.r.upcasters[name] != nil:
			return fmt.Errorf("es: upcaster for %q registered twice", name)
		}
		b.r.upcasters[name] = fn
		return nil
	}
}

// WithCodec sets the codec of payloads; [JSON] by default.
func WithCodec(c Codec) RegistryOption {
	return func(b *registryBuilder) error {
		if c == nil {
			return errors.New("es: nil codec")
		}
		if ct := c.ContentType(); ct != ContentTypeJSON && ct != ContentTypeBinary {
			return fmt.Errorf("es: codec content type %q: want %q or %q", ct, ContentTypeJSON, ContentTypeBinary)
		}
		b.r.codec = c
		return nil
	}
}

// NewRegistry builds a registry. All problems with the options are reported
// together, joined.
//
//	types, err := es.NewRegistry(
//		es.Type[OrderPlaced]("OrderPlaced"),
//		es.Type[OrderShipped]("OrderShipped"),
//	)
func NewRegistry(opts ...RegistryOption) (*Registry, error) {
	b := &registryBuilder{r: &Registry{
		codec:     JSON,
		byName:    make(map[string]decoder),
		byType:    make(map[reflect.Type]string),
		upcasters: make(map[string]Upcaster),
	}}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(b))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b.r, nil
}

// Names returns the registered type names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for name := range r.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Name returns the type name of event, a value or pointer of a registered Go
// type.
func (r *Registry) Name(event any) (string, error) {
	t := reflect.TypeOf(event)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name, ok := r.byType[t]
	if !ok {
		return "", fmt.Errorf("%w: Go type %v is not registered", ErrUnknownEventType, t)
	}
	return name, nil
}

// Encode turns a domain event into [EventData]: its registered type name, a
// new event ID, the payload encoded with the registry's codec, and the
// metadata that ctx carries ([MetadataFromContext]). Metadata that is not
// valid UTF-8 is an error wrapping [ErrInvalidArgument], never stored
// altered.
func (r *Registry) Encode(ctx context.Context, event any) (EventData, error) {
	name, err := r.Name(event)
	if err != nil {
		return EventData{}, err
	}
	data, err := r.codec.Marshal(event)
	if err != nil {
		return EventData{}, fmt.Errorf("es: encode %q: %w", name, err)
	}
	ed := EventData{ID: uuid.New(), Type: name, ContentType: r.codec.ContentType(), Data: data}
	if md := MetadataFromContext(ctx); md.CorrelationID != "" || md.CausationID != "" || len(md.Values) > 0 {
		if ed.Metadata, err = md.MarshalJSON(); err != nil {
			return EventData{}, fmt.Errorf("es: encode metadata of %q: %w", name, err)
		}
	}
	return ed, nil
}

// DecodeError reports a stored event that could not be decoded. It unwraps to
// the cause: [ErrUnknownEventType], a codec error or an upcaster's error.
type DecodeError struct {
	Stream   string
	Revision uint64
	Type     string
	Err      error
}

// Error names the event and the cause.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("es: decode event %d of stream %q (type %q): %v", e.Revision, e.Stream, e.Type, e.Err)
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// Decode upcasts a stored event and decodes its payload into a value of its
// registered Go type. Every failure is a [*DecodeError] naming the stream,
// revision and type.
func (r *Registry) Decode(rec RecordedEvent) (any, error) {
	if len(r.upcasters) == 0 {
		return r.decode(&rec, &rec)
	}
	up, err := r.Upcast(rec)
	if err != nil {
		return nil, decodeError(&rec, err)
	}
	return r.decode(&up, &rec) // errors name the event as stored
}

// decode decodes rec, an event as upcast; errors name stored.
func (r *Registry) decode(rec, stored *RecordedEvent) (any, error) {
	d, ok := r.byName[rec.Type]
	if !ok {
		return nil, decodeError(stored, ErrUnknownEventType)
	}
	if rec.ContentType != "" && rec.ContentType != r.codec.ContentType() {
		return nil, decodeError(stored, fmt.Errorf("content type %q, but the codec reads %q", rec.ContentType, r.codec.ContentType()))
	}
	v, err := d.decode(r.codec, rec.Data)
	if err != nil {
		return nil, decodeError(stored, err)
	}
	return v, nil
}

func decodeError(rec *RecordedEvent, err error) error {
	return &DecodeError{Stream: rec.Stream, Revision: rec.Revision, Type: rec.Type, Err: err}
}

// HasUpcaster reports whether an upcaster is registered for the type name:
// if not, [Registry.Upcast] returns an event of that type unchanged, and
// decoding it needs only its type, content type and payload.
func (r *Registry) HasUpcaster(name string) bool { return r.upcasters[name] != nil }

// Upcast applies the registered upcasters to rec: the upcaster of its type,
// then, if that changed the type, the upcaster of the new type, and so on.
// Each type's upcaster runs at most once per event, so an upcaster may keep
// the type and change only the payload (it then sees current payloads too,
// and must leave them alone).
func (r *Registry) Upcast(rec RecordedEvent) (RecordedEvent, error) {
	var seen []string
	for {
		up := r.upcasters[rec.Type]
		if up == nil || slices.Contains(seen, rec.Type) {
			return rec, nil
		}
		from := rec.Type
		seen = append(seen, from)
		next, err := up(rec)
		if err != nil {
			return rec, fmt.Errorf("upcast from %q: %w", from, err)
		}
		next.ID, next.Stream, next.Revision, next.Position, next.Created = rec.ID, rec.Stream, rec.Revision, rec.Position, rec.Created
		rec = next
	}
}
