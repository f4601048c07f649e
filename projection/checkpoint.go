package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

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
type StreamCheckpoints struct {
	store es.Store
}

var _ Checkpoints[NoTx] = (*StreamCheckpoints)(nil)

// Names StreamCheckpoints uses in the event store.
const (
	CheckpointStreamPrefix = "eventfold.checkpoint-"
	CheckpointEventType    = "$checkpoint"
)

// NewStreamCheckpoints returns checkpoints kept in store.
func NewStreamCheckpoints(store es.Store) *StreamCheckpoints {
	return &StreamCheckpoints{store: store}
}

type streamCheckpoint struct {
	Position   es.Position `json:"position"`
	Rebuilding bool        `json:"rebuilding,omitempty"`
	Partitions int         `json:"partitions,omitempty"`
}

// Load implements [Checkpoints].
func (s *StreamCheckpoints) Load(ctx context.Context, key string) (Checkpoint, error) {
	stream := CheckpointStreamPrefix + key
	ev, ok, err := es.LastEvent(ctx, s.store, stream)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("projection: load checkpoint %q: %w", key, err)
	}
	if ok {
		var cp streamCheckpoint
		if err := json.Unmarshal(ev.Data, &cp); err != nil || ev.Type != CheckpointEventType {
			return Checkpoint{}, fmt.Errorf("%w: %q, revision %d of stream %q: %v", ErrCorruptCheckpoint, key, ev.Revision, stream, err)
		}
		return Checkpoint(cp), nil
	}
	return Checkpoint{}, nil
}

// Commit implements [Checkpoints]: apply runs first, then the checkpoint is
// appended. A crash in between applies the batch again on restart.
func (s *StreamCheckpoints) Commit(ctx context.Context, key string, cp Checkpoint, apply func(NoTx) error) error {
	if apply != nil {
		if err := apply(NoTx{}); err != nil {
			return err
		}
	}
	data, err := json.Marshal(streamCheckpoint(cp))
	if err != nil {
		return err
	}
	stream := CheckpointStreamPrefix + key
	res, err := s.store.Append(ctx, stream, es.Any, es.EventData{Type: CheckpointEventType, Data: data})
	if err != nil {
		return fmt.Errorf("projection: save checkpoint %q: %w", key, err)
	}
	if res.Revision == 0 {
		if _, err := es.SetStreamMetadata(ctx, s.store, stream, es.Any, es.StreamMetadata{MaxCount: 1}); err != nil {
			return fmt.Errorf("projection: save checkpoint %q: %w", key, err)
		}
	}
	return nil
}
