package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/internal/esdbcore"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// Store is an [es.Store] on KurrentDB. It is safe for concurrent use.
type Store struct {
	cfg  *kurrentdb.Configuration // nil with New: no reconnection
	core *esdbcore.Core[*kurrentdb.Client]
}

var _ es.Store = (*Store)(nil)

// Option configures a Store. Options are checked by [Open] and
// [New], which report every invalid one together.
type Option func(*esdbcore.Config) error

// ErrInvalidOption means Open or New was given an invalid option.
var ErrInvalidOption = errors.New("kurrentdb: invalid option")

// WithLogger sets the logger for resubscriptions and the client's own
// messages (logged at debug level); slog.Default() by default.
func WithLogger(l *slog.Logger) Option {
	return Option(esdbcore.WithLogger(ErrInvalidOption, l))
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
	return Option(esdbcore.WithResubscribe(ErrInvalidOption, attempts, backoff))
}

// Open connects to KurrentDB with a connection string such as
// "kurrentdb://localhost:2113?tls=false" (or esdb://), and owns the
// connection: Close releases it. The
// connection is made at the first call, and made again after a connection
// loss, one discovery at a time with the Store's own backoff: the string's
// maxDiscoverAttempts and discoveryInterval are overridden (1 and 0).
func Open(connectionString string, opts ...Option) (*Store, error) {
	cfg, err := kurrentdb.ParseConnectionString(connectionString)
	if err != nil {
		// The client's message may quote the string, credentials and all.
		return nil, fmt.Errorf("kurrentdb: invalid connection string: %w", es.ErrInvalidArgument)
	}
	c, err := esdbcore.NewConfig(opts)
	if err != nil {
		return nil, err
	}
	logger := c.Logger
	cfg.Logger = func(level kurrentdb.LogLevel, format string, args ...any) {
		logger.Debug("kurrentdb client: "+fmt.Sprintf(format, args...), "level", level)
	}
	client, err := kurrentdb.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: connect: %w", err)
	}
	// NewClient only checks the configuration; connections are made by the
	// Store's connection attempts (see esdbcore).
	_ = client.Close()
	// One discovery per connection attempt: the Store retries with its own
	// backoff, and the client's connection goroutine ends for good when its
	// discovery fails (see docs/eventstoredb.md).
	cfg.MaxDiscoverAttempts = 1
	// The client sleeps DiscoveryInterval after its last attempt too, with
	// every other call blocked meanwhile: with one attempt it only delays.
	cfg.DiscoveryInterval = 0
	return &Store{cfg: cfg, core: esdbcore.New(driver(cfg), c, ErrClosed)}, nil
}

// New returns a Store on a client the caller made and still owns. Close does
// not close the client: its owner does. The Store does not replace the
// client after a connection loss, as a Store from [Open] does: the client
// reconnects by its own settings.
func New(client *kurrentdb.Client, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidOption)
	}
	c, err := esdbcore.NewConfig(opts)
	if err != nil {
		return nil, err
	}
	s := &Store{core: esdbcore.New(driver(nil), c, ErrClosed)}
	s.core.Use(client)
	return s, nil
}

// Client returns the client the Store uses now, for what the es.Store
// contract does not cover (persistent subscriptions, projections),
// connecting one if needed within the call timeout; nil if KurrentDB
// cannot be reached or the Store is closed. A Store from Open replaces its
// client after a connection loss and closes the old one: ask again rather
// than keep it.
func (s *Store) Client() *kurrentdb.Client {
	c, _ := s.core.Client()
	return c
}

// Close closes the connection if Open opened it. Calls still running in the
// client (abandoned after their context ended) keep it until they return;
// it is closed then. Close does not wait for a connection attempt under way:
// nothing can interrupt the client's discovery, which ends by itself within
// the client's gossip timeout (5s by default; milliseconds when nothing
// listens at the address) and then closes its client.
func (s *Store) Close() error { return s.core.Close() }

func toExpected(r es.ExpectedRevision) kurrentdb.StreamState {
	switch {
	case r.IsNoStream():
		return kurrentdb.NoStream{}
	case r.IsStreamExists():
		return kurrentdb.StreamExists{}
	}
	if rev, ok := r.Revision(); ok {
		return kurrentdb.Revision(rev)
	}
	return kurrentdb.Any{}
}

func fromPosition(p kurrentdb.Position) es.Position {
	return es.Position{Commit: p.Commit, Prepare: p.Prepare}
}

func toAllPosition(p es.Position) kurrentdb.AllPosition {
	switch p {
	case es.Start:
		return kurrentdb.Start{}
	case es.End:
		return kurrentdb.End{}
	}
	return kurrentdb.Position{Commit: p.Commit, Prepare: p.Prepare}
}

func fromRecorded(r *kurrentdb.RecordedEvent) es.RecordedEvent {
	return es.RecordedEvent{
		ID:          r.EventID,
		Stream:      r.StreamID,
		Revision:    r.EventNumber,
		Position:    fromPosition(r.Position),
		Type:        r.EventType,
		ContentType: r.ContentType,
		Created:     r.CreatedDate.UTC(),
		Data:        r.Data,
		Metadata:    userMetadata(r.UserMetadata),
	}
}

// eventData converts an event to the client's.
func eventData(ev es.EventData) kurrentdb.EventData {
	ct := kurrentdb.ContentTypeBinary
	if ev.ContentType == es.ContentTypeJSON {
		ct = kurrentdb.ContentTypeJson
	}
	return kurrentdb.EventData{EventID: ev.ID, EventType: ev.Type, ContentType: ct, Data: ev.Data, Metadata: ev.Metadata}
}

// ops are the client's calls for the core.
var ops = esdbcore.Ops[*kurrentdb.Client]{
	Append: func(ctx context.Context, cl *kurrentdb.Client, stream string, expected es.ExpectedRevision, events []es.EventData) (es.AppendResult, error) {
		data := make([]kurrentdb.EventData, len(events))
		for i, ev := range events {
			data[i] = eventData(ev)
		}
		res, err := cl.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: toExpected(expected)}, data...)
		if err != nil {
			return es.AppendResult{}, err
		}
		return es.AppendResult{Revision: res.NextExpectedVersion, Position: es.Position{Commit: res.CommitPosition, Prepare: res.PreparePosition}}, nil
	},
	Delete: func(ctx context.Context, cl *kurrentdb.Client, stream string, expected es.ExpectedRevision, tombstone bool) (es.Position, error) {
		var res *kurrentdb.DeleteResult
		var err error
		if tombstone {
			res, err = cl.TombstoneStream(ctx, stream, kurrentdb.TombstoneStreamOptions{StreamState: toExpected(expected)})
		} else {
			res, err = cl.DeleteStream(ctx, stream, kurrentdb.DeleteStreamOptions{StreamState: toExpected(expected)})
		}
		if err != nil {
			return es.Position{}, err
		}
		return fromPosition(res.Position), nil
	},
	ReadStream: func(ctx context.Context, cl *kurrentdb.Client, stream string, opts es.ReadStreamOptions) (esdbcore.Reader, error) {
		o := kurrentdb.ReadStreamOptions{Direction: kurrentdb.Forwards, From: kurrentdb.Revision(opts.From)}
		if opts.Direction == es.Backwards {
			o.Direction = kurrentdb.Backwards
			if opts.From == es.StreamEnd {
				o.From = kurrentdb.End{}
			}
		}
		rs, err := cl.ReadStream(ctx, stream, o, esdbcore.Count(opts.Limit))
		return reader{rs}, err
	},
	ReadAll: func(ctx context.Context, cl *kurrentdb.Client, opts es.ReadAllOptions) (esdbcore.Reader, error) {
		o := kurrentdb.ReadAllOptions{Direction: kurrentdb.Forwards, From: toAllPosition(opts.From)}
		if opts.Direction == es.Backwards {
			o.Direction = kurrentdb.Backwards
		}
		rs, err := cl.ReadAll(ctx, o, esdbcore.Count(opts.Limit))
		return reader{rs}, err
	},
	SubscribeAll: func(ctx context.Context, cl *kurrentdb.Client, after es.Position, f *es.Filter, interval uint32) (esdbcore.Subscription, error) {
		o := kurrentdb.SubscribeToAllOptions{From: toAllPosition(after)}
		if f != nil {
			o.Filter = &kurrentdb.SubscriptionFilter{Type: kurrentdb.EventFilterType, Prefixes: f.Prefixes, Regex: f.Regex}
			if f.On == es.FilterStreamName {
				o.Filter.Type = kurrentdb.StreamFilterType
			}
			o.MaxSearchWindow, o.CheckpointInterval = int(interval), 1
		}
		sub, err := cl.SubscribeToAll(ctx, o)
		return &subscription{sub: sub}, err
	},
	SubscribeStream: func(ctx context.Context, cl *kurrentdb.Client, stream string, after *uint64) (esdbcore.Subscription, error) {
		var from kurrentdb.StreamPosition = kurrentdb.Start{}
		if after != nil {
			from = kurrentdb.Revision(*after)
		}
		sub, err := cl.SubscribeToStream(ctx, stream, kurrentdb.SubscribeToStreamOptions{From: from})
		return &subscription{sub: sub}, err
	},
}

// Append implements [es.Store].
func (s *Store) Append(ctx context.Context, stream string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	return s.core.Append(ctx, stream, expected, events...)
}

// DeleteStream implements [es.Store].
func (s *Store) DeleteStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.core.DeleteStream(ctx, stream, expected)
}

// TombstoneStream implements [es.Store].
func (s *Store) TombstoneStream(ctx context.Context, stream string, expected es.ExpectedRevision) (es.DeleteResult, error) {
	return s.core.TombstoneStream(ctx, stream, expected)
}

// ReadStream implements [es.Store].
func (s *Store) ReadStream(ctx context.Context, stream string, opts es.ReadStreamOptions) iter.Seq2[es.RecordedEvent, error] {
	return s.core.ReadStream(ctx, stream, opts)
}

// ReadAll implements [es.Store].
func (s *Store) ReadAll(ctx context.Context, opts es.ReadAllOptions) iter.Seq2[es.RecordedEvent, error] {
	return s.core.ReadAll(ctx, opts)
}

// SubscribeAll implements [es.Store]. Filters run on the server, which also
// sends the checkpoints.
func (s *Store) SubscribeAll(ctx context.Context, opts es.SubscribeAllOptions) iter.Seq2[es.Message, error] {
	return s.core.SubscribeAll(ctx, opts)
}

// SubscribeStream implements [es.Store].
func (s *Store) SubscribeStream(ctx context.Context, stream string, opts es.SubscribeStreamOptions) iter.Seq2[es.Message, error] {
	return s.core.SubscribeStream(ctx, stream, opts)
}

// reader adapts a client read.
type reader struct{ rs *kurrentdb.ReadStream }

func (r reader) Recv() (*es.RecordedEvent, error) {
	ev, err := r.rs.Recv()
	if err != nil || ev.Event == nil {
		return nil, err // nil: a link to a deleted event
	}
	e := fromRecorded(ev.Event)
	return &e, nil
}

func (r reader) Close() { r.rs.Close() }
