package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/internal/backoff"
)

// Errors of this package, matched with [errors.Is].
var (
	// ErrNotFound means the aggregate's stream does not exist.
	ErrNotFound = errors.New("aggregate: not found")
	// ErrAlreadyExists means Create found the aggregate's stream already
	// written. It also matches [es.ErrWrongExpectedVersion].
	ErrAlreadyExists = errors.New("aggregate: already exists")
	// ErrInvalidOption means New was given an invalid definition or option.
	ErrInvalidOption = errors.New("aggregate: invalid option")
)

// Definition describes an aggregate with state S and events E (usually an
// interface that the aggregate's event types implement).
type Definition[S, E any] struct {
	// Category is the first part of stream names: the aggregate with ID
	// "42" of category "order" lives in stream "order-42". It must not be
	// empty or contain "-".
	Category string
	// Initial returns the state before the first event. Nil means the zero
	// value of S.
	Initial func() S
	// Evolve returns the state after one event. It must be pure and must
	// not fail: events are facts. It may modify and return its argument.
	Evolve func(S, E) S
}

// Stream returns the name of the stream of aggregate id.
func (d Definition[S, E]) Stream(id string) string { return d.Category + "-" + id }

// Fold returns the state after events, from the initial state.
func (d Definition[S, E]) Fold(events ...E) S {
	return d.FoldFrom(d.initial(), events...)
}

// FoldFrom returns the state after events, from state.
func (d Definition[S, E]) FoldFrom(state S, events ...E) S {
	for _, e := range events {
		state = d.Evolve(state, e)
	}
	return state
}

func (d Definition[S, E]) initial() S {
	if d.Initial == nil {
		var zero S
		return zero
	}
	return d.Initial()
}

// Validate reports what is wrong with the definition, wrapping
// [ErrInvalidOption].
func (d Definition[S, E]) Validate() error {
	var errs []error
	switch {
	case d.Category == "":
		errs = append(errs, fmt.Errorf("%w: empty category", ErrInvalidOption))
	case strings.Contains(d.Category, "-"):
		errs = append(errs, fmt.Errorf("%w: category %q contains \"-\", which separates the category from the ID", ErrInvalidOption, d.Category))
	}
	if d.Evolve == nil {
		errs = append(errs, fmt.Errorf("%w: nil Evolve", ErrInvalidOption))
	}
	return errors.Join(errs...)
}

// Decider decides a command against the current state: the new events, or a
// domain error. It may run more than once (after a conflict), so it must be
// pure.
type Decider[S, E any] func(state S) ([]E, error)

// Result reports a successful Create or Update.
type Result[S, E any] struct {
	// State is the state after the new events.
	State S
	// Events are the events appended; none if the decider returned none.
	Events []E
	// Version is the aggregate's version after the append: the revision of
	// its last event.
	Version uint64
	// Position is the `$all` position of the last event appended, for
	// read-your-writes waits on projections. It is the zero es.Position
	// when nothing was appended.
	Position es.Position
	// Attempts is how many times the command was decided: more than 1
	// when concurrent writers made Update retry.
	Attempts int
}

// Repository loads and changes aggregates of one [Definition] in an
// [es.Store]. It is safe for concurrent use.
type Repository[S, E any] struct {
	store es.Store
	types *es.Registry
	def   Definition[S, E]
	cfg   config
	tel   *telemetry
}

type config struct {
	attempts       int
	backoff        time.Duration
	maxBackoff     time.Duration
	snapshots      SnapshotStore
	every          uint64
	snapshotSchema string
	snapshotCodec  es.Codec
	logger         *slog.Logger
	tracers        trace.TracerProvider
	meters         metric.MeterProvider
	noTelemetry    bool // for the benchmarks of what telemetry costs
}

// Option configures a Repository.
type Option func(*config) error

// WithRetry sets how many times Update tries in all when it meets a
// concurrent writer, the first try included as everywhere in eventfold
// (attempts ≥ 1; 1 means no retry), and the wait before the first retry
// (doubled before each next one up to 100 times backoff, with full
// jitter). The default is 5 attempts from 2ms.
func WithRetry(attempts int, backoff time.Duration) Option {
	return func(c *config) error {
		if attempts < 1 {
			return fmt.Errorf("%w: retry attempts %d < 1", ErrInvalidOption, attempts)
		}
		if backoff < 0 {
			return fmt.Errorf("%w: negative backoff %v", ErrInvalidOption, backoff)
		}
		c.attempts, c.backoff, c.maxBackoff = attempts, backoff, 100*backoff
		return nil
	}
}

// WithLogger sets the logger for failures that do not fail a call (a snapshot
// that could not be saved or read); slog.Default() by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// New returns a repository for the aggregates def describes, stored in store
// with event types from types. Problems with the definition or the options
// are reported together, wrapping [ErrInvalidOption].
func New[S, E any](store es.Store, types *es.Registry, def Definition[S, E], opts ...Option) (*Repository[S, E], error) {
	cfg := config{attempts: 5, backoff: 2 * time.Millisecond, maxBackoff: 200 * time.Millisecond, snapshotCodec: es.JSON}
	errs := []error{def.Validate()}
	if store == nil {
		errs = append(errs, fmt.Errorf("%w: nil store", ErrInvalidOption))
	}
	if types == nil {
		errs = append(errs, fmt.Errorf("%w: nil registry", ErrInvalidOption))
	}
	for _, opt := range opts {
		errs = append(errs, opt(&cfg))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	tel, err := newTelemetry(def.Category, cfg)
	if err != nil {
		return nil, err
	}
	return &Repository[S, E]{store: store, types: types, def: def, cfg: cfg, tel: tel}, nil
}

// Definition returns the definition the repository was built with.
func (r *Repository[S, E]) Definition() Definition[S, E] { return r.def }

// stream validates id and returns its stream name.
func (r *Repository[S, E]) stream(id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%w: empty %s ID", es.ErrInvalidArgument, r.def.Category)
	}
	name := r.def.Stream(id)
	return name, es.ValidateStreamName(name)
}

// Load returns the current state of aggregate id and its version (the
// revision of its last event). A missing aggregate is [ErrNotFound].
func (r *Repository[S, E]) Load(ctx context.Context, id string) (S, uint64, error) {
	stream, err := r.stream(id)
	if err != nil {
		var zero S
		return zero, 0, err
	}
	l, err := r.loadTraced(ctx, id, stream)
	return l.state, uint64(l.version), err
}

// loadTraced is load in a span "load {category}".
func (r *Repository[S, E]) loadTraced(ctx context.Context, id, stream string) (loaded[S], error) {
	ctx, sp := r.tel.start(ctx, opLoad, id)
	l, err := r.load(ctx, stream)
	if err == nil {
		sp.set(AttrVersion.Int64(l.version), AttrSnapshot.Int64(l.snapshot))
	}
	sp.end(err)
	return l, err
}

// decideTraced runs decide on state in a span "decide {category}".
func (r *Repository[S, E]) decideTraced(ctx context.Context, id string, decide Decider[S, E], state S) ([]E, error) {
	_, sp := r.tel.start(ctx, opDecide, id)
	events, err := decide(state)
	sp.set(AttrEvents.Int(len(events)))
	sp.end(err)
	return events, err
}

// loaded is an aggregate as loaded: its state, version and the revision of
// the snapshot it started from (-1 for none).
type loaded[S any] struct {
	state    S
	version  int64
	snapshot int64
}

func (r *Repository[S, E]) load(ctx context.Context, stream string) (loaded[S], error) {
	l := r.loadSnapshot(ctx, stream)
	from := uint64(l.version + 1)
	for rec, err := range r.store.ReadStream(ctx, stream, es.ReadStreamOptions{From: from}) {
		if errors.Is(err, es.ErrStreamNotFound) {
			return loaded[S]{}, fmt.Errorf("%w: stream %q", ErrNotFound, stream)
		}
		if err != nil {
			return loaded[S]{}, fmt.Errorf("aggregate: load %q: %w", stream, err)
		}
		e, err := r.decode(rec)
		if err != nil {
			return loaded[S]{}, fmt.Errorf("aggregate: load %q: %w", stream, err)
		}
		l.state = r.def.Evolve(l.state, e)
		l.version = int64(rec.Revision)
	}
	if l.version < 0 {
		// The stream exists but every event is cut away by its metadata.
		return loaded[S]{}, fmt.Errorf("%w: stream %q has no events", ErrNotFound, stream)
	}
	return l, nil
}

func (r *Repository[S, E]) decode(rec es.RecordedEvent) (E, error) {
	v, err := r.types.Decode(rec)
	if err != nil {
		var zero E
		return zero, err
	}
	e, ok := v.(E)
	if !ok {
		var zero E
		return zero, &es.DecodeError{Stream: rec.Stream, Revision: rec.Revision, Type: rec.Type,
			Err: fmt.Errorf("decodes to %T, which is not %v", v, reflect.TypeFor[E]())}
	}
	return e, nil
}

// Create decides a command against the initial state of a new aggregate and
// appends the events, expecting no stream. If aggregate id already exists,
// it returns [ErrAlreadyExists] (unless the same events were appended
// before, which is idempotent). Errors returned by decide are returned
// unwrapped.
func (r *Repository[S, E]) Create(ctx context.Context, id string, decide Decider[S, E]) (Result[S, E], error) {
	stream, err := r.stream(id)
	if err != nil {
		return Result[S, E]{}, err
	}
	ctx, sp := r.tel.start(ctx, opCreate, id)
	res, err := r.create(ctx, id, stream, decide)
	sp.end(err)
	return res, err
}

func (r *Repository[S, E]) create(ctx context.Context, id, stream string, decide Decider[S, E]) (Result[S, E], error) {
	l := loaded[S]{state: r.def.initial(), version: -1, snapshot: -1}
	events, err := r.decideTraced(ctx, id, decide, l.state)
	if err != nil {
		return Result[S, E]{}, err
	}
	res, err := r.append(ctx, stream, es.NoStream, l, events)
	var wev *es.WrongExpectedVersionError
	if errors.As(err, &wev) {
		return Result[S, E]{}, &alreadyExistsError{wev: wev}
	}
	res.Attempts = 1
	return res, err
}

// alreadyExistsError matches ErrAlreadyExists and unwraps to the store's
// wrong expected version.
type alreadyExistsError struct{ wev *es.WrongExpectedVersionError }

func (e *alreadyExistsError) Error() string {
	return fmt.Sprintf("aggregate: already exists: stream %q is at revision %s", e.wev.Stream, e.wev.Actual)
}

func (e *alreadyExistsError) Is(target error) bool { return target == ErrAlreadyExists }
func (e *alreadyExistsError) Unwrap() error        { return e.wev }

// Update loads aggregate id, decides a command against its state and appends
// the events, expecting the version it loaded. When another writer appended
// in between, it loads and decides again, as configured by [WithRetry]; when
// attempts run out, the error matches [es.ErrWrongExpectedVersion].
// A missing aggregate is [ErrNotFound]. Errors returned by decide are
// returned unwrapped.
func (r *Repository[S, E]) Update(ctx context.Context, id string, decide Decider[S, E]) (Result[S, E], error) {
	stream, err := r.stream(id)
	if err != nil {
		return Result[S, E]{}, err
	}
	ctx, sp := r.tel.start(ctx, opUpdate, id)
	res, err := r.update(ctx, sp, id, stream, decide)
	sp.set(AttrAttempts.Int(res.Attempts))
	sp.end(err)
	if err != nil {
		return Result[S, E]{}, err
	}
	return res, nil
}

func (r *Repository[S, E]) update(ctx context.Context, sp span, id, stream string, decide Decider[S, E]) (Result[S, E], error) {
	for attempt := 1; ; attempt++ {
		l, err := r.loadTraced(ctx, id, stream)
		if err != nil {
			return Result[S, E]{Attempts: attempt}, err
		}
		events, err := r.decideTraced(ctx, id, decide, l.state)
		if err != nil {
			return Result[S, E]{Attempts: attempt}, err
		}
		res, err := r.append(ctx, stream, es.Exact(uint64(l.version)), l, events)
		if !errors.Is(err, es.ErrWrongExpectedVersion) {
			res.Attempts = attempt
			return res, err
		}
		r.cfg.logger.DebugContext(ctx, "aggregate: conflict; deciding again", "stream", stream, "attempt", attempt, "error", err)
		r.tel.conflict(ctx, sp, attempt, err)
		if attempt == r.cfg.attempts {
			return Result[S, E]{Attempts: attempt}, fmt.Errorf("aggregate: update %q: gave up after %d attempts: %w", stream, attempt, err)
		}
		wait := backoff.Policy{First: r.cfg.backoff, Max: r.cfg.maxBackoff, Jitter: 1}.Wait(attempt)
		if err := backoff.Sleep(ctx, wait); err != nil {
			return Result[S, E]{Attempts: attempt}, err
		}
	}
}

// append encodes and appends events decided against l, and snapshots the
// new state when it is due.
func (r *Repository[S, E]) append(ctx context.Context, stream string, expected es.ExpectedRevision, l loaded[S], events []E) (Result[S, E], error) {
	if len(events) == 0 {
		return Result[S, E]{State: l.state, Version: uint64(max(l.version, 0))}, nil
	}
	data := make([]es.EventData, len(events))
	for i, e := range events {
		if t := reflect.TypeOf(e); t != nil && t.Kind() == reflect.Pointer {
			// Evolve would see a pointer, the stream a value: the state
			// returned would differ from the state loaded.
			return Result[S, E]{}, fmt.Errorf("aggregate: append to %q: event %d is a %v: deciders return event values, not pointers", stream, i, t)
		}
		d, err := r.types.Encode(ctx, e)
		if err != nil {
			return Result[S, E]{}, fmt.Errorf("aggregate: append to %q: %w", stream, err)
		}
		data[i] = d
	}
	res, err := r.store.Append(ctx, stream, expected, data...)
	if err != nil {
		return Result[S, E]{}, err
	}
	state := r.def.FoldFrom(l.state, events...)
	r.maybeSnapshot(ctx, stream, state, l.snapshot, res.Revision)
	return Result[S, E]{State: state, Events: events, Version: res.Revision, Position: res.Position}, nil
}
