package sqlstore_test

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

// openSQLitePath opens a store on an existing path, closed at the end of
// the test.
func openSQLitePath(t *testing.T, path string, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, append([]sqlstore.Option{sqlstore.WithPollInterval(10 * time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// testSub is a subscription running in a goroutine that the test owns: it
// is cancelled and waited for at the end of the test.
type testSub struct {
	msgs <-chan received
	done <-chan struct{}
}

type received struct {
	msg es.Message
	err error
}

// subscribe starts a stream subscription with subscribe (a Store's
// SubscribeStream method).
func subscribe(t *testing.T, subscribe func(context.Context, string, es.SubscribeStreamOptions) iter.Seq2[es.Message, error],
	stream string, opts es.SubscribeStreamOptions) *testSub {
	t.Helper()
	return start(t, func(ctx context.Context) iter.Seq2[es.Message, error] { return subscribe(ctx, stream, opts) })
}

func start(t *testing.T, seq func(ctx context.Context) iter.Seq2[es.Message, error]) *testSub {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	msgs := make(chan received, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(msgs)
		for msg, err := range seq(ctx) {
			select {
			case msgs <- received{msg, err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &testSub{msgs: msgs, done: done}
}

// receive returns the next message or error, failing the test after 10 s.
func (s *testSub) receive(t *testing.T) (es.Message, error) {
	t.Helper()
	select {
	case r, ok := <-s.msgs:
		require.True(t, ok, "the subscription ended without an error")
		return r.msg, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription delivered nothing within 10 s")
		return es.Message{}, nil
	}
}

// next returns the next event, skipping other messages.
func (s *testSub) next(t *testing.T) es.RecordedEvent {
	t.Helper()
	for {
		msg, err := s.receive(t)
		require.NoError(t, err, "the subscription failed")
		if msg.Kind == es.KindEvent {
			return msg.Event
		}
	}
}
