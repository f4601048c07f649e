package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
)

// Checkpoint is where a projection stands in the global log.
type Checkpoint struct {
	// Position is the position of the last event (or filtered-subscription
	// checkpoint) applied; the projection resumes after it.
	Position es.Position
	// Rebuilding is set while a rebuild in place is under way, so that an
	// interrupted rebuild continues instead of starting over.
	Rebuilding bool
	// Partitions is the number of partitions of the projection, on the
	// checkpoint of one of its partitions ([Projection.Partitions]); 0 on
	// the checkpoint of a projection that is not partitioned. A runner
	// refuses a checkpoint written with another number: changing it needs
	// a new version of the projection.
	Partitions int
}

// Checkpoints keeps the checkpoints of projections and runs their batches
// in transactions of type Tx. Implementations must be safe for concurrent
// use.
type Checkpoints[Tx any] interface {
	// Load returns the checkpoint stored under key; the zero Checkpoint if
	// there is none. A stored checkpoint that cannot be read is an error,
	// never a silent restart from the beginning.
	Load(ctx context.Context, key string) (Checkpoint, error)
	// Commit runs apply (which may be nil) in a transaction and stores cp
	// under key in the same transaction: both happen, or neither.
	Commit(ctx context.Context, key string, cp Checkpoint, apply func(tx Tx) error) error
}

// Leaser is implemented by Checkpoints that can grant a projection to one
// runner at a time, across processes.
//
// Lease blocks until the lease on key is granted or ctx is done. It returns
// held, a context derived from ctx that is cancelled with the cause
// [ErrLeaseLost] (see [context.Cause]) if the lease ends before release:
// its holder could not renew it in time, or another took it over. The
// holder must stop committing once held is done (the store fences its
// commits anyway). release gives the lease back and cancels held.
type Leaser interface {
	Lease(ctx context.Context, key string) (held context.Context, release func(), err error)
}

// LeaseHolders is implemented by Leasers that can say who holds a lease,
// for status reports: a runner that does not run in this process reports
// [StateElsewhere] and the holder's name.
type LeaseHolders interface {
	// LeaseHolder returns the name of the holder of key's lease, or ""
	// when nobody holds it.
	LeaseHolder(ctx context.Context, key string) (string, error)
}

// Membership is implemented by checkpoint stores that let the replicas of
// a service see each other, so that they share the partitions of a
// partitioned projection fairly ([Partitioned]).
//
// Join makes member (unique to one replica) a member of group until ctx
// ends or leave is called, renewing the membership in the background
// within the store's time-to-live; a member that stops renewing (its
// process was killed) drops out of Members once that time has passed.
// Members returns the live members of group, in any order.
type Membership interface {
	Join(ctx context.Context, group, member string) (leave func(), err error)
	Members(ctx context.Context, group string) ([]string, error)
}

// ErrLeaseLost means a runner's lease ended while it ran: its holder
// could not renew it within its time-to-live (the database was away), or
// another process took it over. The runner stops committing; with
// [WithRestart] it goes back to waiting for its lease.
var ErrLeaseLost = errors.New("projection: lease lost")

// Versions is implemented by Checkpoints that record which version of a
// projection queries read, for blue/green rebuilds.
type Versions[Tx any] interface {
	// ActiveVersion returns the active version of projection name, or 0
	// when none was recorded.
	ActiveVersion(ctx context.Context, name string) (int, error)
	// SetActiveVersion runs apply and records version as the active one,
	// in one transaction.
	SetActiveVersion(ctx context.Context, name string, version int, apply func(tx Tx) error) error
}

// DeadLetter is an event that a projection skipped because it could not
// apply it.
type DeadLetter struct {
	Projection string
	Event      es.RecordedEvent
	Error      string
	At         time.Time
}

// DeadLetters keeps the events projections skipped, keyed by projection and
// event ID, so that recording the same one twice keeps one.
type DeadLetters interface {
	SaveDeadLetter(ctx context.Context, d DeadLetter) error
	DeadLetters(ctx context.Context, projection string) ([]DeadLetter, error)
}

// NoTx is the transaction type of read models that live outside a
// transactional store (in memory, in a search index): their handlers get
// NoTx{} and must tolerate a batch applied again after a crash.
type NoTx struct{}

// MemoryCheckpoints keeps checkpoints, active versions and dead letters in
// memory, for tests and in-memory read models. Its leases work within the
// process. The zero value is ready to use.
type MemoryCheckpoints struct {
	mu       sync.Mutex
	cps      map[string]Checkpoint
	versions map[string]int
	dead     map[string][]DeadLetter
	leases   map[string]chan struct{}
	members  map[string]map[string]int // group → member → joins
}

var (
	_ Checkpoints[NoTx] = (*MemoryCheckpoints)(nil)
	_ Leaser            = (*MemoryCheckpoints)(nil)
	_ Versions[NoTx]    = (*MemoryCheckpoints)(nil)
	_ DeadLetters       = (*MemoryCheckpoints)(nil)
	_ Membership        = (*MemoryCheckpoints)(nil)
)

// Load implements [Checkpoints].
func (m *MemoryCheckpoints) Load(ctx context.Context, key string) (Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cps[key], nil
}

// Commit implements [Checkpoints]. apply runs under the store's lock, so
// commits of different projections do not interleave.
func (m *MemoryCheckpoints) Commit(ctx context.Context, key string, cp Checkpoint, apply func(NoTx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if apply != nil {
		if err := apply(NoTx{}); err != nil {
			return err
		}
	}
	if m.cps == nil {
		m.cps = make(map[string]Checkpoint)
	}
	m.cps[key] = cp
	return nil
}

// Lease implements [Leaser] within the process. A lease in memory is
// never lost: held ends with ctx or release.
func (m *MemoryCheckpoints) Lease(ctx context.Context, key string) (context.Context, func(), error) {
	m.mu.Lock()
	if m.leases == nil {
		m.leases = make(map[string]chan struct{})
	}
	sem, ok := m.leases[key]
	if !ok {
		sem = make(chan struct{}, 1)
		m.leases[key] = sem
	}
	m.mu.Unlock()
	select {
	case sem <- struct{}{}:
		held, cancel := context.WithCancel(ctx)
		var once sync.Once
		return held, func() { once.Do(func() { cancel(); <-sem }) }, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// Join implements [Membership] within the process: member stays until
// leave is called or ctx ends.
func (m *MemoryCheckpoints) Join(ctx context.Context, group, member string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.members == nil {
		m.members = make(map[string]map[string]int)
	}
	if m.members[group] == nil {
		m.members[group] = make(map[string]int)
	}
	m.members[group][member]++
	m.mu.Unlock()
	var once sync.Once
	leave := func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.members[group][member]--; m.members[group][member] <= 0 {
				delete(m.members[group], member)
			}
		})
	}
	stop := context.AfterFunc(ctx, leave)
	return func() { stop(); leave() }, nil
}

// Members implements [Membership].
func (m *MemoryCheckpoints) Members(ctx context.Context, group string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.members[group]))
	for member := range m.members[group] {
		out = append(out, member)
	}
	return out, nil
}

// ActiveVersion implements [Versions].
func (m *MemoryCheckpoints) ActiveVersion(ctx context.Context, name string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.versions[name], nil
}

// SetActiveVersion implements [Versions].
func (m *MemoryCheckpoints) SetActiveVersion(ctx context.Context, name string, version int, apply func(NoTx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if apply != nil {
		if err := apply(NoTx{}); err != nil {
			return err
		}
	}
	if m.versions == nil {
		m.versions = make(map[string]int)
	}
	m.versions[name] = version
	return nil
}

// SaveDeadLetter implements [DeadLetters].
func (m *MemoryCheckpoints) SaveDeadLetter(ctx context.Context, d DeadLetter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead == nil {
		m.dead = make(map[string][]DeadLetter)
	}
	for i, old := range m.dead[d.Projection] {
		if old.Event.ID == d.Event.ID {
			m.dead[d.Projection][i] = d
			return nil
		}
	}
	m.dead[d.Projection] = append(m.dead[d.Projection], d)
	return nil
}

// DeadLetters implements [DeadLetters].
func (m *MemoryCheckpoints) DeadLetters(ctx context.Context, projection string) ([]DeadLetter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]DeadLetter(nil), m.dead[projection]...), nil
}

// StreamCheckpoints keeps checkpoints in the event store itself: the
// checkpoint of key lives in stream "eventfold.checkpoint-<key>" as events
// of type "$checkpoint" (a system type: subscriptions that exclude system
// events skip them), and the stream keeps only its newest event
// (`$maxCount` 1). The stream name does not start with "$", so that
// EventStoreDB lets users other than admins write it. It suits read models that do not live in SQL (a search index, a
// cache): the checkpoint is not written in the read model's transaction,
// so their handlers must tolerate a batch applied again after a crash.
//
// It also grants leases ([Leaser], [LeaseHolders]) and lets replicas see
// each other ([Membership]) through the same store, without locks, so
// that it works on EventStoreDB: see [StreamCheckpoints.Lease] and
// [StreamCheckpoints.Join]. It is safe for concurrent use.
type StreamCheckpoints struct {
	store es.Store
	cfg   streamConfig
	// instance identifies this value in the leases it holds.
	instance string

	taking sync.Mutex // held while a lease is taken
	mu     sync.Mutex
	leases map[string]*streamLease // the leases this value holds, by key
}

var (
	_ Checkpoints[NoTx] = (*StreamCheckpoints)(nil)
	_ Leaser            = (*StreamCheckpoints)(nil)
	_ LeaseHolders      = (*StreamCheckpoints)(nil)
	_ Membership        = (*StreamCheckpoints)(nil)
)

// Names StreamCheckpoints uses in the event store.
const (
	CheckpointStreamPrefix = "eventfold.checkpoint-"
	CheckpointEventType    = "$checkpoint"
)

// NewStreamCheckpoints returns checkpoints kept in store. An invalid
// option is an error wrapping [ErrInvalidOption].
func NewStreamCheckpoints(store es.Store, opts ...StreamOption) (*StreamCheckpoints, error) {
	cfg, err := newStreamConfig(store, opts)
	if err != nil {
		return nil, err
	}
	return &StreamCheckpoints{store: store, cfg: cfg, instance: uuid.NewString(), leases: make(map[string]*streamLease)}, nil
}

// streamCheckpoint is the data of a checkpoint event: the checkpoint, and
// the lease on its key.
type streamCheckpoint struct {
	Position   es.Position `json:"position"`
	Rebuilding bool        `json:"rebuilding,omitempty"`
	Partitions int         `json:"partitions,omitempty"`
	// Holder names the holder of the lease; "" when nobody holds it
	// (given back, or never taken).
	Holder string `json:"holder,omitempty"`
	// Instance is the StreamCheckpoints value that holds the lease.
	Instance string `json:"instance,omitempty"`
	// Token counts the takes of the lease (a fencing token for tools: the
	// fence itself is the stream's expected revision).
	Token uint64 `json:"token,omitempty"`
}

func (r streamCheckpoint) checkpoint() Checkpoint {
	return Checkpoint{Position: r.Position, Rebuilding: r.Rebuilding, Partitions: r.Partitions}
}

func (r *streamCheckpoint) set(cp Checkpoint) {
	r.Position, r.Rebuilding, r.Partitions = cp.Position, cp.Rebuilding, cp.Partitions
}

// Load implements [Checkpoints].
func (s *StreamCheckpoints) Load(ctx context.Context, key string) (Checkpoint, error) {
	rec, _, _, err := s.last(ctx, key)
	if err != nil {
		return Checkpoint{}, err
	}
	return rec.checkpoint(), nil
}

// last reads the last checkpoint event of key: its record, its revision,
// and whether there is one.
func (s *StreamCheckpoints) last(ctx context.Context, key string) (rec streamCheckpoint, ev es.RecordedEvent, ok bool, err error) {
	stream := CheckpointStreamPrefix + key
	ev, ok, err = es.LastEvent(ctx, s.store, stream)
	if err != nil {
		return rec, ev, false, fmt.Errorf("projection: load checkpoint %q: %w", key, err)
	}
	if ok {
		if err := json.Unmarshal(ev.Data, &rec); err != nil || ev.Type != CheckpointEventType {
			return rec, ev, false, fmt.Errorf("%w: %q, revision %d of stream %q: %v", ErrCorruptCheckpoint, key, ev.Revision, stream, err)
		}
	}
	return rec, ev, ok, nil
}

// Commit implements [Checkpoints]: apply runs first, then the checkpoint is
// appended. A crash in between applies the batch again on restart.
//
// A Commit of a key whose lease this value holds appends with the expected
// revision of the lease's last append, so that it fails, with an error
// matching [ErrFenced] and [ErrLeaseLost], once the lease is lost or
// another took it over; apply does not run when the lease is already
// known lost. Without a lease, Commit appends whatever the stream holds.
func (s *StreamCheckpoints) Commit(ctx context.Context, key string, cp Checkpoint, apply func(NoTx) error) error {
	if l := s.leaseOf(key); l != nil {
		return l.commit(ctx, cp, apply)
	}
	if apply != nil {
		if err := apply(NoTx{}); err != nil {
			return err
		}
	}
	var rec streamCheckpoint
	rec.set(cp)
	if _, err := s.append(ctx, CheckpointStreamPrefix+key, es.Any, s.event(rec)); err != nil {
		return fmt.Errorf("projection: save checkpoint %q: %w", key, err)
	}
	return nil
}

// event returns the checkpoint event of rec.
func (s *StreamCheckpoints) event(rec streamCheckpoint) es.EventData {
	data, _ := json.Marshal(rec) // of plain fields: cannot fail
	return es.EventData{ID: uuid.New(), Type: CheckpointEventType, Data: data}
}

// append appends ev to a checkpoint stream, and sets the stream's metadata
// when it created the stream.
func (s *StreamCheckpoints) append(ctx context.Context, stream string, expected es.ExpectedRevision, ev es.EventData) (es.AppendResult, error) {
	res, err := s.store.Append(ctx, stream, expected, ev)
	if err == nil && res.Revision == 0 {
		err = s.keepLast(ctx, stream)
	}
	return res, err
}

// keepLast sets the metadata of a checkpoint stream that it creates: it
// keeps only its newest event.
func (s *StreamCheckpoints) keepLast(ctx context.Context, stream string) error {
	_, err := es.SetStreamMetadata(ctx, s.store, stream, es.Any, es.StreamMetadata{MaxCount: 1})
	return err
}
