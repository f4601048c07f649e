package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/eventfold/eventfold/es"
)

// ErrNoSnapshot means a [SnapshotStore] holds no snapshot for a stream.
var ErrNoSnapshot = errors.New("aggregate: no snapshot")

// Snapshot is an aggregate's state saved at a revision of its stream.
type Snapshot struct {
	// Stream is the aggregate's stream.
	Stream string
	// Revision is the revision of the last event folded into the state.
	Revision uint64
	// Schema is the version of the state's encoding (see [WithSnapshots]).
	Schema string
	// Data is the encoded state.
	Data []byte
}

// SnapshotStore keeps the latest snapshot of each stream. Implementations
// must be safe for concurrent use.
type SnapshotStore interface {
	// LoadSnapshot returns the latest snapshot of stream, or an error
	// matching [ErrNoSnapshot].
	LoadSnapshot(ctx context.Context, stream string) (Snapshot, error)
	// SaveSnapshot saves s as the latest snapshot of s.Stream. A store
	// may keep a later snapshot it already holds instead.
	SaveSnapshot(ctx context.Context, s Snapshot) error
}

// WithSnapshots saves the state to store after an append that leaves at
// least every events after the last snapshot, and loads from the snapshot.
// schema names the version of the state's encoding: change it when the state
// type changes shape, and snapshots of other versions are ignored (the
// aggregate is replayed from its first event, and snapshotted again).
// The state is encoded with [es.JSON] unless [WithSnapshotCodec] says
// otherwise.
func WithSnapshots(store SnapshotStore, every uint64, schema string) Option {
	return func(c *config) error {
		if store == nil {
			return fmt.Errorf("%w: nil snapshot store", ErrInvalidOption)
		}
		if every == 0 {
			return fmt.Errorf("%w: snapshot every 0 events", ErrInvalidOption)
		}
		c.snapshots, c.every, c.snapshotSchema = store, every, schema
		return nil
	}
}

// WithSnapshotCodec sets the codec that encodes the state in snapshots;
// [es.JSON] by default.
func WithSnapshotCodec(codec es.Codec) Option {
	return func(c *config) error {
		if codec == nil {
			return fmt.Errorf("%w: nil snapshot codec", ErrInvalidOption)
		}
		c.snapshotCodec = codec
		return nil
	}
}

// loadSnapshot returns the initial state, or the state of the latest usable
// snapshot. A snapshot that cannot be used is logged and ignored: replaying
// the stream gives the same state, only slower.
func (r *Repository[S, E]) loadSnapshot(ctx context.Context, stream string) loaded[S] {
	l := loaded[S]{state: r.def.initial(), version: -1, snapshot: -1}
	if r.cfg.snapshots == nil {
		return l
	}
	snap, err := r.cfg.snapshots.LoadSnapshot(ctx, stream)
	switch {
	case errors.Is(err, ErrNoSnapshot):
		return l
	case err != nil:
		r.cfg.logger.WarnContext(ctx, "aggregate: cannot load snapshot; replaying the stream", "stream", stream, "error", err)
		return l
	case snap.Schema != r.cfg.snapshotSchema:
		return l
	}
	// A stream deleted and recreated since the snapshot hides its old life
	// (`$tb` past the snapshot): the snapshot belongs to that old life.
	if meta, _, err := es.GetStreamMetadata(ctx, r.store, stream); err != nil {
		r.cfg.logger.WarnContext(ctx, "aggregate: cannot read stream metadata; replaying the stream", "stream", stream, "error", err)
		return l
	} else if meta.TruncateBefore > snap.Revision {
		return l
	}
	state := r.def.initial()
	if err := r.cfg.snapshotCodec.Unmarshal(snap.Data, &state); err != nil {
		r.cfg.logger.WarnContext(ctx, "aggregate: cannot decode snapshot; replaying the stream", "stream", stream, "revision", snap.Revision, "error", err)
		return l
	}
	return loaded[S]{state: state, version: int64(snap.Revision), snapshot: int64(snap.Revision)}
}

// maybeSnapshot saves state at revision if enough events passed since the
// snapshot at revision last (-1 for none). A failure does not fail the
// append, which is committed: it is logged, and the next append tries again.
func (r *Repository[S, E]) maybeSnapshot(ctx context.Context, stream string, state S, last int64, revision uint64) {
	if r.cfg.snapshots == nil || int64(revision)-last < int64(r.cfg.every) {
		return
	}
	data, err := r.cfg.snapshotCodec.Marshal(state)
	if err == nil {
		err = r.cfg.snapshots.SaveSnapshot(ctx, Snapshot{Stream: stream, Revision: revision, Schema: r.cfg.snapshotSchema, Data: data})
	}
	if err != nil {
		r.cfg.logger.WarnContext(ctx, "aggregate: cannot save snapshot", "stream", stream, "revision", revision, "error", err)
	}
}

// MemorySnapshots is a [SnapshotStore] in memory. The zero value is ready to
// use.
type MemorySnapshots struct {
	mu    sync.Mutex
	snaps map[string]Snapshot
}

var _ SnapshotStore = (*MemorySnapshots)(nil)

// LoadSnapshot implements [SnapshotStore].
func (m *MemorySnapshots) LoadSnapshot(ctx context.Context, stream string) (Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.snaps[stream]
	if !ok {
		return Snapshot{}, fmt.Errorf("%w: stream %q", ErrNoSnapshot, stream)
	}
	s.Data = append([]byte(nil), s.Data...)
	return s, nil
}

// SaveSnapshot implements [SnapshotStore].
func (m *MemorySnapshots) SaveSnapshot(ctx context.Context, s Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.snaps[s.Stream]; ok && old.Revision > s.Revision {
		return nil
	}
	if m.snaps == nil {
		m.snaps = make(map[string]Snapshot)
	}
	s.Data = append([]byte(nil), s.Data...)
	m.snaps[s.Stream] = s
	return nil
}

// StreamSnapshots is a [SnapshotStore] that keeps snapshots in an event
// store: the snapshot of stream "order-42" is the last event of stream
// "snapshot-order-42", of type "$snapshot" (a system type, so that
// subscriptions excluding system events do not see it), and the snapshot
// stream keeps only its newest event (`$maxCount` 1).
type StreamSnapshots struct {
	store es.Store
}

var _ SnapshotStore = (*StreamSnapshots)(nil)

// Names StreamSnapshots uses in the event store.
const (
	SnapshotStreamPrefix = "snapshot-"
	SnapshotEventType    = "$snapshot"
)

// NewStreamSnapshots returns a snapshot store that keeps snapshots in store.
func NewStreamSnapshots(store es.Store) *StreamSnapshots {
	return &StreamSnapshots{store: store}
}

type snapshotMeta struct {
	Stream   string `json:"stream"`
	Revision uint64 `json:"revision"`
	Schema   string `json:"schema"`
}

// LoadSnapshot implements [SnapshotStore].
func (s *StreamSnapshots) LoadSnapshot(ctx context.Context, stream string) (Snapshot, error) {
	name := SnapshotStreamPrefix + stream
	rec, ok, err := es.LastEvent(ctx, s.store, name)
	if err != nil {
		return Snapshot{}, fmt.Errorf("aggregate: load snapshot of %q: %w", stream, err)
	}
	if ok {
		var m snapshotMeta
		if err := json.Unmarshal(rec.Metadata, &m); err != nil || rec.Type != SnapshotEventType || m.Stream != stream {
			return Snapshot{}, fmt.Errorf("aggregate: load snapshot of %q: event %d of %q is not a snapshot", stream, rec.Revision, name)
		}
		return Snapshot{Stream: stream, Revision: m.Revision, Schema: m.Schema, Data: rec.Data}, nil
	}
	return Snapshot{}, fmt.Errorf("%w: stream %q", ErrNoSnapshot, stream)
}

// SaveSnapshot implements [SnapshotStore]. It does not compare revisions:
// the newest snapshot written wins, and every snapshot is a valid state.
func (s *StreamSnapshots) SaveSnapshot(ctx context.Context, snap Snapshot) error {
	name := SnapshotStreamPrefix + snap.Stream
	meta, err := json.Marshal(snapshotMeta{Stream: snap.Stream, Revision: snap.Revision, Schema: snap.Schema})
	if err != nil {
		return err
	}
	res, err := s.store.Append(ctx, name, es.Any, es.EventData{Type: SnapshotEventType, ContentType: es.ContentTypeBinary, Data: snap.Data, Metadata: meta})
	if err != nil {
		return fmt.Errorf("aggregate: save snapshot of %q: %w", snap.Stream, err)
	}
	if res.Revision == 0 {
		if _, err := es.SetStreamMetadata(ctx, s.store, name, es.Any, es.StreamMetadata{MaxCount: 1}); err != nil {
			return fmt.Errorf("aggregate: save snapshot of %q: %w", snap.Stream, err)
		}
	}
	return nil
}
