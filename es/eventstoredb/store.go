package eventstoredb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Store is an [es.Store] on EventStoreDB. It is safe for concurrent use.
type Store struct {
	cfg         *esdb.Configuration // nil with New: no reconnection
	logger      *slog.Logger
	attempts    int
	backoff     time.Duration
	maxBackoff  time.Duration
	callTimeout time.Duration

	probes sync.WaitGroup // connection attempts (tests wait for them)

	mu            sync.Mutex // guards the fields below
	cur           *conn      // nil: connect at the next call
	probing       chan struct{}
	lastErr       error // of the last connection attempt or loss
	retryAt       time.Time
	probeFailures int
	closed        bool
}

var _ es.Store = (*Store)(nil)

// Option configures a Store. Options are checked by [Open] and
// [New], which report every invalid one together.
type Option func(*config) error

// config is the configuration of a Store.
type config struct {
	logger      *slog.Logger
	attempts    int
	backoff     time.Duration
	maxBackoff  time.Duration
	callTimeout time.Duration
}

// ErrInvalidOption means Open or New was given an invalid option.
var ErrInvalidOption = errors.New("eventstoredb: invalid option")

// WithLogger sets the logger for resubscriptions and the client's own
// messages (logged at debug level); slog.Default() by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// WithResubscribe sets how a dropped subscription is resumed: attempts
// counts the tries in all, as everywhere in eventfold, of a subscription
// that delivers nothing in between: the subscription that dropped, or
// could not be opened, is the first; after the last one fails the iterator
// yields its error (1 means no resubscription). The wait before
// resubscription n is backoff doubled n-1 times, up to 50 times backoff,
// of which the last half is random. The default is 11 attempts (10
// resubscriptions) from 100ms.
func WithResubscribe(attempts int, backoff time.Duration) Option {
	return func(c *config) error {
		if attempts < 1 || backoff <= 0 {
			return fmt.Errorf("%w: resubscribe %d attempts from %v", ErrInvalidOption, attempts, backoff)
		}
		c.attempts, c.backoff, c.maxBackoff = attempts, backoff, 50*backoff
		return nil
	}
}

// Open connects to EventStoreDB with a connection string such as
// "esdb://localhost:2113?tls=false", and owns the connection: Close releases it. The
// connection is made at the first call, and made again after a connection
// loss, one discovery at a time with the Store's own backoff: the string's
// maxDiscoverAttempts and discoveryInterval are overridden (1 and 0).
func Open(connectionString string, opts ...Option) (*Store, error) {
	cfg, err := esdb.ParseConnectionString(connectionString)
	if err != nil {
		// The client's message may quote the string, credentials and all.
		return nil, fmt.Errorf("eventstoredb: invalid connection string: %w", es.ErrInvalidArgument)
	}
	s, err := newStore(opts)
	if err != nil {
		return nil, err
	}
	logger := s.logger
	cfg.Logger = func(level esdb.LogLevel, format string, args ...any) {
		logger.Debug("eventstoredb client: "+fmt.Sprintf(format, args...), "level", level)
	}
	client, err := esdb.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("eventstoredb: connect: %w", err)
	}
	// NewClient only checks the configuration; connections are made by the
	// Store's connection attempts (see acquire).
	_ = client.Close()
	// One discovery per connection attempt: the Store retries with its own
	// backoff, and the client's connection goroutine ends for good when its
	// discovery fails (see docs/eventstoredb.md).
	cfg.MaxDiscoverAttempts = 1
	// The client sleeps DiscoveryInterval after its last attempt too, with
	// every other call blocked meanwhile: with one attempt it only delays.
	cfg.DiscoveryInterval = 0
	s.cfg = cfg
	return s, nil
}

// New returns a Store on a client the caller made and still owns. Close does
// not close the client: its owner does. The Store does not replace the
// client after a connection loss, as a Store from [Open] does: the client
// reconnects by its own settings.
func New(client *esdb.Client, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidOption)
	}
	s, err := newStore(opts)
	if err != nil {
		return nil, err
	}
	s.cur = &conn{client: client}
	return s, nil
}

func newStore(opts []Option) (*Store, error) {
	c := config{logger: slog.Default(), attempts: 11, backoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second, callTimeout: DefaultCallTimeout}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(&c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Store{logger: c.logger, attempts: c.attempts, backoff: c.backoff, maxBackoff: c.maxBackoff, callTimeout: c.callTimeout}, nil
}

// Client returns the client the Store uses now, for what the es.Store
// contract does not cover (persistent subscriptions, projections),
// connecting one if needed within the call timeout; nil if EventStoreDB
// cannot be reached or the Store is closed. A Store from Open replaces its
// client after a connection loss and closes the old one: ask again rather
// than keep it.
func (s *Store) Client() *esdb.Client {
	ctx, cancel := context.WithTimeout(context.Background(), s.callTimeout)
	defer cancel()
	c, err := s.acquire(ctx)
	if err != nil {
		return nil
	}
	s.release(c, nil)
	return c.client
}

// Close closes the connection if Open opened it. Calls still running in the
// client (abandoned after their context ended) keep it until they return;
// it is closed then. Close does not wait for a connection attempt under way:
// nothing can interrupt the client's discovery, which ends by itself within
// the client's gossip timeout (5s by default; milliseconds when nothing
// listens at the address) and then closes its client.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	c := s.cur
	s.cur = nil
	closeIt := false
	if c != nil && c.owned {
		c.retired = true
		closeIt = c.inflight == 0
	}
	s.mu.Unlock()
	if closeIt {
		return c.client.Close()
	}
	return nil
}

func toExpected(r es.ExpectedRevision) esdb.ExpectedRevision {
	switch {
	case r.IsNoStream():
		return esdb.NoStream{}
	case r.IsStreamExists():
		return esdb.StreamExists{}
	}
	if rev, ok := r.Revision(); ok {
		return esdb.Revision(rev)
	}
	return esdb.Any{}
}

func fromPosition(p esdb.Position) es.Position {
	return es.Position{Commit: p.Commit, Prepare: p.Prepare}
}

func toAllPosition(p es.Position) esdb.AllPosition {
	switch p {
	case es.Start:
		return esdb.Start{}
	case es.End:
		return esdb.End{}
	}
	return esdb.Position{Commit: p.Commit, Prepare: p.Prepare}
}

func fromRecorded(r *esdb.RecordedEvent) es.RecordedEvent {
	return es.RecordedEvent{
		ID:          r.EventID,
		Stream:      r.StreamID,
		Revision:    r.EventNumber,
		Position:    fromPosition(r.Position),
		Type:        r.EventType,
		ContentType: r.ContentType,
		Created:     r.CreatedDate.UTC(),
		Data:        r.Data,
		Metadata:    r.UserMetadata,
	}
}

// Append implements [es.Store].
func (s *Store) Append(ctx context.Context, stream string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	evs, err := esdriver.PrepareAppend(stream, events, es.MaxAppendSize)
	if err != nil {
		return es.AppendResult{}, err
	}
	data := make([]esdb.EventData, len(evs))
	for i, ev := range evs {
		ct := esdb.ContentTypeBinary
		if ev.ContentType == es.ContentTypeJSON {
			ct = esdb.ContentTypeJson
		}
		data[i] = esdb.EventData{EventID: ev.ID, EventType: ev.Type, ContentType: ct, Data: ev.Data, Metadata: ev.Metadata}
	}
	var res *esdb.WriteResult
	err = s.unary(ctx, stream, func(ctx context.Context, cl *esdb.Client) (err error) {
		res, err = cl.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: toExpected(expected)}, data...)
		return err
	})
	if err != nil {
		return es.AppendResult{}, s.mapError(ctx, stream, expected, err)
	}
	if len(evs) == 0 {
		// The client cannot tell "no stream" from revision 1 in an empty
		// append's result: ask the stream itself.
		return s.currentState(ctx, stream)
	}
	return es.AppendResult{Revision: res.NextExpectedVersion, Position: es.Position{Commit: res.CommitPosition, Prepare: res.PreparePosition}}, nil
}

// currentState reports a stream's last revision and position.
func (s *Store) currentState(ctx context.Context, stream string) (es.AppendResult, error) {
	ev, ok, err := es.LastEvent(ctx, s, stream)
	if err != nil {
		return es.AppendResult{}, err
	}
	if ok {
		return es.AppendResult{Revision: ev.Revision, Position: ev.Position}, nil
	}
	last, ok := s.lastRevision(ctx, stream)
	if !ok {
		return es.AppendResult{NoStream: true}, nil
	}
	return es.AppendResult{Revision: last}, nil
}

// wrongVersionText is the client's message for a wrong expected version.
var wrongVersionText = regexp.MustCompile(`but got '([^']*)'`)

// mapError turns the client's errors into es's.
func (s *Store) mapError(ctx context.Context, stream string, expected es.ExpectedRevision, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("eventstoredb: %w", ctxErr)
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) {
		return err // the adapter's own, already described
	}
	var e *esdb.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("eventstoredb: stream %q: %w", stream, err)
	}
	switch e.Code() {
	case esdb.ErrorCodeWrongExpectedVersion:
		wev := &es.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: es.NoStream}
		if m := wrongVersionText.FindStringSubmatch(e.Error()); m != nil && m[1] != "no_stream" {
			if n, perr := strconv.ParseUint(m[1], 10, 64); perr == nil {
				wev.Actual = es.Exact(n)
			}
		}
		return wev
	case esdb.ErrorCodeStreamDeleted:
		return esdriver.StreamDeleted(stream)
	case esdb.ErrorCodeResourceNotFound:
		return esdriver.StreamNotFound(stream)
	}
	switch status.Code(err) {
	case codes.FailedPrecondition:
		// A wrong expected version on delete, which the client leaves
		// unmapped: find the actual revision ourselves.
		wev := &es.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: es.NoStream}
		if last, ok := s.lastRevision(ctx, stream); ok {
			wev.Actual = es.Exact(last)
		}
		return wev
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: stream %q: %v", es.ErrMaxAppendSizeExceeded, stream, err)
	case codes.InvalidArgument:
		return fmt.Errorf("%w: stream %q: %v", es.ErrInvalidArgument, stream, err)
	}
	if transientClientError(err) {
		return fmt.Errorf("%w: stream %q: %w", ErrUnavailable, stream, err)
	}
	return fmt.Errorf("eventstoredb: stream %q: %w", stream, err)
}

// lastRevision returns the last revision of a stream, soft-deleted or not,
// by asking for an empty append at a revision no stream reaches: the server
// refuses it and reports the stream's actual revision, writing nothing.
func (s *Store) lastRevision(ctx context.Context, stream string) (uint64, bool) {
	err := s.unary(ctx, stream, func(ctx context.Context, cl *esdb.Client) error {
		_, err := cl.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(math.MaxInt64 - 1)})
		return err
	})
	if err == nil {
		return 0, false
	}
	var wev *es.WrongExpectedVersionError
	if errors.As(s.mapError(ctx, stream, es.Any, err), &wev) {
		return wev.Actual.Revision()
	}
	return 0, false
}

// DeleteStream implements [es.Store].
func (s *Store) DeleteStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	if err := es.ValidateStreamName(stream); err != nil {
		return es.DeleteResult{}, err
	}
	var res *esdb.DeleteResult
	err := s.unary(ctx, stream, func(ctx context.Context, cl *esdb.Client) (err error) {
		res, err = cl.DeleteStream(ctx, stream, esdb.DeleteStreamOptions{ExpectedRevision: toExpected(expected)})
		return err
	})
	if err != nil {
		return es.DeleteResult{}, s.mapError(ctx, stream, expected, err)
	}
	return es.DeleteResult{Position: fromPosition(res.Position)}, nil
}

// TombstoneStream implements [es.Store].
func (s *Store) TombstoneStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	if err := es.ValidateStreamName(stream); err != nil {
		return es.DeleteResult{}, err
	}
	var res *esdb.DeleteResult
	err := s.unary(ctx, stream, func(ctx context.Context, cl *esdb.Client) (err error) {
		res, err = cl.TombstoneStream(ctx, stream, esdb.TombstoneStreamOptions{ExpectedRevision: toExpected(expected)})
		return err
	})
	if err != nil {
		return es.DeleteResult{}, s.mapError(ctx, stream, expected, err)
	}
	return es.DeleteResult{Position: fromPosition(res.Position)}, nil
}

// count converts a read limit: 0 means no limit.
func count(limit uint64) uint64 {
	if limit == 0 {
		return math.MaxInt64
	}
	return limit
}

// read yields the events of a client read until its end. Opening the read
// is bounded by the call timeout; the read then runs with ctx.
func (s *Store) read(ctx context.Context, stream string, open func(context.Context, *esdb.Client) (*esdb.ReadStream, error)) iter.Seq2[es.RecordedEvent, error] {
	return func(yield func(es.RecordedEvent, error) bool) {
		readCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		waitCtx, cancelWait := s.bound(readCtx)
		var rs *esdb.ReadStream
		release, err := s.call(ctx, waitCtx, readCtx, stream, true, func(ctx context.Context, cl *esdb.Client) (func(), error) {
			r, err := open(ctx, cl)
			if err != nil {
				return nil, err
			}
			rs = r
			return r.Close, nil
		})
		cancelWait()
		if err != nil {
			yield(es.RecordedEvent{}, s.mapError(ctx, stream, es.Any, err))
			return
		}
		var recvErr error
		defer func() { release(recvErr) }()
		defer rs.Close()
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				recvErr = err
				yield(es.RecordedEvent{}, s.mapError(ctx, stream, es.Any, err))
				return
			}
			if ev.Event == nil {
				continue // a link to a deleted event
			}
			if !yield(fromRecorded(ev.Event), nil) {
				return
			}
		}
	}
}

// ReadStream implements [es.Store].
func (s *Store) ReadStream(ctx context.Context, stream string, opts es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	if err := es.ValidateStreamName(stream); err != nil {
		return func(yield func(es.RecordedEvent, error) bool) { yield(es.RecordedEvent{}, err) }
	}
	o := esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(opts.From)}
	if opts.Direction == es.Backwards {
		o.Direction = esdb.Backwards
		if opts.From == es.StreamEnd {
			o.From = esdb.End{}
		}
	}
	return s.read(ctx, stream, func(ctx context.Context, cl *esdb.Client) (*esdb.ReadStream, error) {
		return cl.ReadStream(ctx, stream, o, count(opts.Limit))
	})
}

// ReadAll implements [es.Store].
func (s *Store) ReadAll(ctx context.Context, opts es.ReadAllOptions) iter.Seq2[es.RecordedEvent, error] {
	o := esdb.ReadAllOptions{Direction: esdb.Forwards, From: toAllPosition(opts.From)}
	if opts.Direction == es.Backwards {
		o.Direction = esdb.Backwards
	}
	return s.read(ctx, "$all", func(ctx context.Context, cl *esdb.Client) (*esdb.ReadStream, error) {
		return cl.ReadAll(ctx, o, count(opts.Limit))
	})
}
