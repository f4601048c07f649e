package eventstoredb

import (
	"errors"
	"io"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/internal/esdbcore"
)

// ErrUnavailable means EventStoreDB could not be reached, or did not answer
// within the call timeout: the connection is down, the node is restarting
// or a leader election is under way. Errors that wrap it are transient: the
// same call may succeed later. See [IsTransient].
//
// It is [es.ErrUnavailable], the error every store returns when its server
// is away: errors.Is(err, es.ErrUnavailable) works for every store.
var ErrUnavailable = es.ErrUnavailable

// ErrClosed means the Store was closed.
var ErrClosed = errors.New("eventstoredb: store is closed")

// IsTransient reports whether err is a failure to reach EventStoreDB (it
// wraps [ErrUnavailable]) after which retrying the call may succeed.
func IsTransient(err error) bool { return errors.Is(err, ErrUnavailable) }

// DefaultCallTimeout bounds each call into the client when the caller's
// context has no earlier deadline.
const DefaultCallTimeout = esdbcore.DefaultCallTimeout

// WithCallTimeout bounds each call into the client (an append, a delete,
// opening a read or a subscription) by d when the caller's context has no
// earlier deadline; DefaultCallTimeout by default. A call that times out
// returns an error wrapping [ErrUnavailable]. Reading a stream that is
// open and the life of a subscription are not bounded by it.
func WithCallTimeout(d time.Duration) Option {
	return Option(esdbcore.WithCallTimeout(ErrInvalidOption, d))
}

// driver is what the shared core needs of the v4 client. cfg is nil for a
// Store from New, which never connects a client of its own.
func driver(cfg *esdb.Configuration) esdbcore.Driver[*esdb.Client] {
	return esdbcore.Driver[*esdb.Client]{
		Name: "eventstoredb",
		Connect: func() (*esdb.Client, error) {
			// The server's version makes the client discover the node.
			client, err := esdb.NewClient(cfg)
			if err != nil {
				return nil, err
			}
			if _, err := client.GetServerVersion(); err != nil {
				_ = client.Close()
				return nil, err
			}
			return client, nil
		},
		Close:    func(c *esdb.Client) error { return c.Close() },
		Classify: classify,
		Ops:      ops,
	}
}

// classify tells what a client error means.
func classify(err error) esdbcore.Class {
	var e *esdb.Error
	if !errors.As(err, &e) {
		return esdbcore.ClassForeign
	}
	switch e.Code() {
	case esdb.ErrorUnavailable, esdb.ErrorCodeConnectionClosed:
		return esdbcore.ClassConnectionLost
	case esdb.ErrorCodeUnknown:
		// An append whose request stream broke: the client reports
		// Send's io.EOF, not the stream's status.
		if errors.Is(e.Err(), io.EOF) {
			return esdbcore.ClassConnectionLost
		}
	case esdb.ErrorCodeWrongExpectedVersion:
		return esdbcore.ClassWrongExpectedVersion
	case esdb.ErrorCodeStreamDeleted:
		return esdbcore.ClassStreamDeleted
	case esdb.ErrorCodeResourceNotFound:
		return esdbcore.ClassNotFound
	case esdb.ErrorCodeDeadlineExceeded:
		return esdbcore.ClassDeadlineExceeded
	case esdb.ErrorCodeNotLeader:
		return esdbcore.ClassNotLeader
	case esdb.ErrorAborted:
		return esdbcore.ClassAborted
	}
	return esdbcore.ClassOther
}
