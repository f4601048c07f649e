package projection

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/eventfold/eventfold/es"
)

// Event is a stored event handed to a projection, with its payload decoded
// by the runner's registry.
type Event struct {
	es.RecordedEvent
	// Payload is the decoded event: a value of the Go type registered for
	// its type name. It is nil when the runner has no registry.
	Payload any
}

// Batch is what a projection's handler applies in one transaction.
type Batch struct {
	// Projection is the projection's name.
	Projection string
	// Version is the version of the read model being built (see
	// [Projection.Version]).
	Version int
	// Events are the events to apply, in log order.
	Events []Event
}

// Recorded returns the batch's events as stored, without their payloads:
// what a relay publishes.
func (b Batch) Recorded() []es.RecordedEvent {
	out := make([]es.RecordedEvent, len(b.Events))
	for i, e := range b.Events {
		out[i] = e.RecordedEvent
	}
	return out
}

// Table returns the name of a table of the read model for the batch's
// version: "order_summaries" becomes "order_summaries_v2". Read models
// that rebuild blue/green keep each version in tables of their own.
func (b Batch) Table(name string) string { return VersionedName(name, b.Version) }

// VersionedName returns name with the version suffix, as [Batch.Table].
func VersionedName(name string, version int) string { return fmt.Sprintf("%s_v%d", name, version) }

// HandleFunc applies a batch of events to a read model within the
// transaction tx, which also records the projection's checkpoint. An error
// rolls back the batch; the runner retries it.
type HandleFunc[Tx any] func(ctx context.Context, tx Tx, b Batch) error

// Each returns a HandleFunc that applies the events of a batch one by one.
func Each[Tx any](fn func(ctx context.Context, tx Tx, version int, ev Event) error) HandleFunc[Tx] {
	return func(ctx context.Context, tx Tx, b Batch) error {
		for _, ev := range b.Events {
			if err := fn(ctx, tx, b.Version, ev); err != nil {
				return err
			}
		}
		return nil
	}
}

// Projection describes a read model built from the global log. Tx is the
// transaction type of its [Checkpoints] store: *sql.Tx for read models in
// SQL, [NoTx] for those in memory.
type Projection[Tx any] struct {
	// Name identifies the projection in checkpoints, status and the
	// replay tool: "order-summaries". It must not change.
	Name string
	// Version is the version of the read model's shape, 1 if zero. A
	// blue/green rebuild builds version n+1 beside n, then switches.
	Version int
	// EventTypes, if set, selects the events by exact type name.
	EventTypes []string
	// Categories, if set, selects the events of streams "<category>-…".
	Categories []string
	// Handle applies a batch of events. Required.
	Handle HandleFunc[Tx]
	// Setup creates the read model of a version (tables, indexes), if it
	// does not exist. It runs before the projection starts. Optional.
	Setup func(ctx context.Context, tx Tx, version int) error
	// Reset empties the read model of a version, for a rebuild in place.
	// Required for rebuilds in place.
	Reset func(ctx context.Context, tx Tx, version int) error
	// Activate makes version the one that queries read (for example by
	// pointing views at its tables). It runs when a blue/green rebuild
	// switches over, in the transaction that records the switch. Optional.
	Activate func(ctx context.Context, tx Tx, version int) error
	// Drop deletes the read model of a version, when an old version is
	// dropped after a blue/green switch. Optional.
	Drop func(ctx context.Context, tx Tx, version int) error
	// Partitions, if above 1, splits the projection into that many
	// partitions, run with [NewPartitioned]: each event goes to the
	// partition [PartitionOf] its key, each partition keeps a checkpoint
	// and a lease of its own, and the replicas of a service share the
	// partitions. One key's events stay in order, on one partition; events
	// of different keys are applied in parallel, so the read model's
	// writes for different keys must not depend on each other's order.
	// The number is part of the read model's shape: changing it needs a
	// new Version (a blue/green rebuild), and a runner refuses checkpoints
	// written with another number ([ErrPartitionsChanged]).
	Partitions int
	// PartitionKey returns the key that assigns an event to a partition:
	// the event's stream if nil, so that one aggregate's events stay in
	// order. It must depend on the event alone, and never change for a
	// version of the read model.
	PartitionKey func(es.RecordedEvent) string
}

// ErrInvalidProjection means a Projection or a runner option is not valid.
var ErrInvalidProjection = errors.New("projection: invalid projection")

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Validate reports what is wrong with p, wrapping [ErrInvalidProjection].
func (p Projection[Tx]) Validate() error {
	var errs []error
	if len(p.Name) > 200 || !validName.MatchString(p.Name) {
		errs = append(errs, fmt.Errorf("%w: name %q: want letters, digits, '_', '.' and '-', up to 200", ErrInvalidProjection, p.Name))
	}
	if p.Version < 0 {
		errs = append(errs, fmt.Errorf("%w: %s: negative version %d", ErrInvalidProjection, p.Name, p.Version))
	}
	if p.Handle == nil {
		errs = append(errs, fmt.Errorf("%w: %s: nil Handle", ErrInvalidProjection, p.Name))
	}
	for _, c := range p.Categories {
		if c == "" || strings.Contains(c, "-") {
			errs = append(errs, fmt.Errorf("%w: %s: category %q", ErrInvalidProjection, p.Name, c))
		}
	}
	if p.Partitions < 0 || p.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("%w: %s: %d partitions: want 0 to %d", ErrInvalidProjection, p.Name, p.Partitions, MaxPartitions))
	}
	for _, t := range p.EventTypes {
		if t == "" {
			errs = append(errs, fmt.Errorf("%w: %s: empty event type", ErrInvalidProjection, p.Name))
		}
	}
	return errors.Join(errs...)
}

func (p Projection[Tx]) version() int { return max(p.Version, 1) }

// key is the name under which version v of the projection keeps its
// checkpoint; that of a partitioned projection records the number of its
// partitions and holds its setup.
func key(name string, version int) string { return fmt.Sprintf("%s/v%d", name, version) }

// partitionKey is the name under which partition i of version v keeps its
// checkpoint.
func partitionKey(name string, version, i int) string {
	return fmt.Sprintf("%s/v%d/p%d", name, version, i)
}

// partitioned reports whether p is split into partitions.
func (p Projection[Tx]) partitioned() bool { return p.Partitions > 1 }

// partitionOf returns the partition of ev.
func (p Projection[Tx]) partitionOf(ev es.RecordedEvent) int {
	k := ev.Stream
	if p.PartitionKey != nil {
		k = p.PartitionKey(ev)
	}
	return PartitionOf(k, p.Partitions)
}

// MaxPartitions is the most partitions a projection may have.
const MaxPartitions = 1024

// PartitionOf returns the partition, from 0 to partitions-1, of the events
// whose partition key is key: the 32-bit FNV-1a hash of key, modulo
// partitions. It never changes, so that a key's events stay on one
// partition across processes, hosts and releases. partitions below 2 give
// 0.
func PartitionOf(key string, partitions int) int {
	if partitions < 2 {
		return 0
	}
	h := uint32(2166136261) // FNV-1a, 32 bits
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(partitions))
}

// filter returns the server-side filter of the runner's subscription, and
// the check of the events its partition consumes.
func (r *Runner[Tx]) filter() (*es.Filter, func(es.RecordedEvent) bool) {
	filter, keep := r.p.filter()
	if r.part == nil {
		return filter, keep
	}
	i := r.part.index
	return filter, func(ev es.RecordedEvent) bool { return keep(ev) && r.p.partitionOf(ev) == i }
}

// filter returns the server-side filter of the projection's subscription
// and the check the runner applies to what the filter lets through.
func (p Projection[Tx]) filter() (*es.Filter, func(es.RecordedEvent) bool) {
	types := make(map[string]bool, len(p.EventTypes))
	for _, t := range p.EventTypes {
		types[t] = true
	}
	prefixes := make([]string, len(p.Categories))
	for i, c := range p.Categories {
		prefixes[i] = c + "-"
	}
	keep := func(e es.RecordedEvent) bool {
		if e.IsSystem() || (len(types) > 0 && !types[e.Type]) {
			return false
		}
		for _, p := range prefixes {
			if strings.HasPrefix(e.Stream, p) {
				return true
			}
		}
		return len(prefixes) == 0
	}
	switch {
	case len(prefixes) > 0:
		return es.StreamPrefixes(prefixes...), keep
	case len(types) > 0:
		quoted := make([]string, len(p.EventTypes))
		for i, t := range p.EventTypes {
			quoted[i] = regexp.QuoteMeta(t)
		}
		return &es.Filter{On: es.FilterEventType, Regex: "^(" + strings.Join(quoted, "|") + ")$"}, keep
	}
	return es.ExcludeSystemEvents(), keep
}
