package estest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
)

// Option configures [Run]. An invalid option fails the test that calls
// Run, with every invalid option reported together.
type Option func(*config) error

type config struct {
	writers int
	appends int
	timeout time.Duration
}

// WithConcurrency sets the size of the concurrency tests: how many goroutines
// write at the same time, and how many appends each of them makes. The
// default is 8 writers of 50 appends each; slow stores may run fewer.
// Both numbers must be at least 1.
func WithConcurrency(writers, appendsPerWriter int) Option {
	return func(c *config) error {
		if writers < 1 || appendsPerWriter < 1 {
			return fmt.Errorf("estest: WithConcurrency(%d, %d): both numbers must be at least 1", writers, appendsPerWriter)
		}
		c.writers, c.appends = writers, appendsPerWriter
		return nil
	}
}

// WithTimeout sets how long the suite waits for a subscription to deliver its
// next message (or to end once its context is cancelled) before it fails the
// subtest; 10 seconds by default. It must be positive.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("estest: WithTimeout(%v): must be positive", d)
		}
		c.timeout = d
		return nil
	}
}

// Run runs the conformance suite against the stores newStore returns. newStore is
// called once per subtest and may return the same store every time.
//
// Run fails t if an option is invalid. Subtests are named after the
// operation and the case, such as "Append/ExpectedRevision/NoStream/OnExisting",
// so that a part of the suite can be run alone with go test -run.
//
// The subtests "AppendStreams/…" run when the store implements
// [es.MultiStreamAppender]; they skip if it reports the call unsupported.
//
// The suite writes, deletes and tombstones streams whose names start with
// "estest-" followed by a random UUID, and their metadata streams; it never
// touches other streams, so it may run against a store that holds real data.
// The store must be safe for concurrent use.
func Run(t *testing.T, newStore func(t *testing.T) es.Store, opts ...Option) {
	t.Helper()
	cfg := config{writers: 8, appends: 50, timeout: 10 * time.Second}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(&cfg))
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	s := &suite{newStore: newStore, config: cfg}
	t.Run("Append", s.testAppend)
	t.Run("ReadStream", s.testReadStream)
	t.Run("ReadAll", s.testReadAll)
	t.Run("Validation", s.testValidation)
	t.Run("StreamMetadata", s.testStreamMetadata)
	t.Run("Delete", s.testDelete)
	t.Run("Tombstone", s.testTombstone)
	t.Run("SubscribeStream", s.testSubscribeStream)
	t.Run("SubscribeAll", s.testSubscribeAll)
	t.Run("Concurrency", s.testConcurrency)
	if _, ok := newStore(t).(es.MultiStreamAppender); ok {
		t.Run("AppendStreams", s.testAppendStreams)
	}
}

type suite struct {
	newStore func(t *testing.T) es.Store
	config
}

// run runs f as a subtest with a store of its own.
func (s *suite) run(t *testing.T, name string, f func(t *testing.T, store es.Store)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		store := s.newStore(t)
		require.NotNil(t, store, "newStore returned nil")
		f(t, store)
	})
}

// newPrefix returns a prefix for the names of one subtest's streams (or event
// types), unique to it: no other subtest and no other program uses it.
func newPrefix(kind string) string {
	return "estest-" + kind + "-" + uuid.NewString() + "-"
}

// newStream returns a stream name of its own for one subtest.
func newStream(kind string) string {
	return strings.TrimSuffix(newPrefix(kind), "-")
}

// newEvents returns n events of type typ with fresh IDs and JSON payloads.
func newEvents(n int, typ string) []es.EventData {
	evs := make([]es.EventData, n)
	for i := range evs {
		evs[i] = es.EventData{
			ID:          uuid.New(),
			Type:        typ,
			ContentType: es.ContentTypeJSON,
			Data:        fmt.Appendf(nil, `{"n":%d}`, i),
			Metadata:    []byte(`{"source":"estest"}`),
		}
	}
	return evs
}

func appendOK(t *testing.T, store es.Store, stream string, expected es.ExpectedRevision, evs ...es.EventData) es.AppendResult {
	t.Helper()
	res, err := store.Append(t.Context(), stream, expected, evs...)
	require.NoErrorf(t, err, "Append(%q, %v, %d events)", stream, expected, len(evs))
	return res
}

// collect ranges over seq and returns its values and the error it ended with.
// It fails the test if a value follows an error.
func collect[T any](t *testing.T, seq iter.Seq2[T, error]) ([]T, error) {
	t.Helper()
	var (
		out []T
		err error
	)
	for v, e := range seq {
		require.NoErrorf(t, err, "the iterator yielded a value after the error %v", err)
		if e != nil {
			err = e
			continue
		}
		out = append(out, v)
	}
	return out, err
}

func readStream(t *testing.T, store es.Store, stream string, opts es.ReadStreamOptions) []es.RecordedEvent {
	t.Helper()
	evs, err := collect(t, store.ReadStream(t.Context(), stream, opts))
	require.NoErrorf(t, err, "ReadStream(%q, %+v)", stream, opts)
	return evs
}

func readStreamErr(t *testing.T, store es.Store, stream string, opts es.ReadStreamOptions) error {
	t.Helper()
	evs, err := collect(t, store.ReadStream(t.Context(), stream, opts))
	require.Errorf(t, err, "ReadStream(%q) read %d events and no error", stream, len(evs))
	return err
}

// head returns the position of the newest event in `$all`, or es.Start.
func head(t *testing.T, store es.Store) es.Position {
	t.Helper()
	evs, err := collect(t, store.ReadAll(t.Context(), es.ReadAllOptions{Direction: es.Backwards, From: es.End, Limit: 1}))
	require.NoError(t, err, "ReadAll backwards from End, limit 1")
	if len(evs) == 0 {
		return es.Start
	}
	return evs[0].Position
}

// readAllSince reads `$all` forwards from from (inclusive) and keeps the
// events of the streams whose names start with prefix.
func readAllSince(t *testing.T, store es.Store, from es.Position, prefix string) []es.RecordedEvent {
	t.Helper()
	var out []es.RecordedEvent
	for ev, err := range store.ReadAll(t.Context(), es.ReadAllOptions{From: from}) {
		require.NoError(t, err, "ReadAll forwards from %v", from)
		if strings.HasPrefix(ev.Stream, prefix) {
			out = append(out, ev)
		}
	}
	return out
}

// revisions returns the revisions of evs; nil for no events.
func revisions(evs []es.RecordedEvent) []uint64 {
	var out []uint64
	for _, ev := range evs {
		out = append(out, ev.Revision)
	}
	return out
}

func recordedIDs(evs []es.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func dataIDs(evs []es.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// requireWrongVersion checks that err is a wrong expected version for stream
// with the given expected and actual revisions.
func requireWrongVersion(t *testing.T, err error, stream string, expected, actual es.ExpectedRevision) {
	t.Helper()
	require.Error(t, err, "want a wrong expected version (expected %v, actual %v)", expected, actual)
	require.ErrorIsf(t, err, es.ErrWrongExpectedVersion, "want a wrong expected version (expected %v, actual %v)", expected, actual)
	var wev *es.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev, "a wrong expected version must be a *es.WrongExpectedVersionError")
	require.Equal(t, stream, wev.Stream, "WrongExpectedVersionError.Stream")
	require.Equalf(t, expected, wev.Expected, "WrongExpectedVersionError.Expected: want %v, got %v", expected, wev.Expected)
	require.Equalf(t, actual, wev.Actual, "WrongExpectedVersionError.Actual: want %v, got %v", actual, wev.Actual)
}

// requireSameEvent checks that got holds want's fields.
func requireSameEvent(t *testing.T, want es.EventData, stream string, got es.RecordedEvent) {
	t.Helper()
	require.Equal(t, want.ID, got.ID, "ID")
	require.Equal(t, stream, got.Stream, "Stream")
	require.Equal(t, want.Type, got.Type, "Type")
	require.Equal(t, want.ContentType, got.ContentType, "ContentType")
	require.Truef(t, bytes.Equal(want.Data, got.Data), "Data: want %q, got %q", want.Data, got.Data)
	require.Truef(t, bytes.Equal(want.Metadata, got.Metadata), "Metadata: want %q, got %q", want.Metadata, got.Metadata)
}

// requireIncreasing checks that the positions of evs are strictly increasing.
func requireIncreasing(t *testing.T, evs []es.RecordedEvent) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		require.Equalf(t, -1, evs[i-1].Position.Compare(evs[i].Position),
			"positions must increase: %v (%s@%d) then %v (%s@%d)",
			evs[i-1].Position, evs[i-1].Stream, evs[i-1].Revision, evs[i].Position, evs[i].Stream, evs[i].Revision)
	}
}

// subscription runs a subscription in a goroutine owned by the test. It
// queues everything the iterator yields, so a slow test never blocks the
// store, and is stopped (its context cancelled, its goroutine waited for)
// by stop or at the end of the test.
type subscription struct {
	t       *testing.T
	timeout time.Duration
	cancel  context.CancelFunc
	done    chan struct{}
	signal  chan struct{} // has a value when got grew

	mu  sync.Mutex
	got []received

	next int // index in got of the next value to return; test goroutine only
}

type received struct {
	msg es.Message
	err error
}

func (s *suite) subscribe(t *testing.T, start func(ctx context.Context) iter.Seq2[es.Message, error]) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	sub := &subscription{
		t:       t,
		timeout: s.timeout,
		cancel:  cancel,
		done:    make(chan struct{}),
		signal:  make(chan struct{}, 1),
	}
	go func() {
		defer close(sub.done)
		for msg, err := range start(ctx) {
			sub.mu.Lock()
			sub.got = append(sub.got, received{msg, err})
			sub.mu.Unlock()
			select {
			case sub.signal <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { sub.stop() })
	return sub
}

func (s *suite) subscribeAll(t *testing.T, store es.Store, opts es.SubscribeAllOptions) *subscription {
	t.Helper()
	return s.subscribe(t, func(ctx context.Context) iter.Seq2[es.Message, error] { return store.SubscribeAll(ctx, opts) })
}

func (s *suite) subscribeStream(t *testing.T, store es.Store, stream string, opts es.SubscribeStreamOptions) *subscription {
	t.Helper()
	return s.subscribe(t, func(ctx context.Context) iter.Seq2[es.Message, error] {
		return store.SubscribeStream(ctx, stream, opts)
	})
}

// receive returns the next value the subscription yielded. It fails the test
// if none comes within the timeout, or if the iterator ended without an
// error.
func (sub *subscription) receive() (es.Message, error) {
	sub.t.Helper()
	timer := time.NewTimer(sub.timeout)
	defer timer.Stop()
	for {
		sub.mu.Lock()
		if sub.next < len(sub.got) {
			r := sub.got[sub.next]
			sub.next++
			sub.mu.Unlock()
			return r.msg, r.err
		}
		sub.mu.Unlock()
		select {
		case <-sub.signal:
		case <-sub.done:
			sub.mu.Lock()
			more := sub.next < len(sub.got)
			sub.mu.Unlock()
			if !more {
				sub.t.Fatalf("the subscription ended after %d messages, while the test waited for more", sub.next)
			}
		case <-timer.C:
			sub.t.Fatalf("the subscription delivered nothing within %v after %d messages", sub.timeout, sub.next)
		}
	}
}

// message returns the next message, failing the test on an error.
func (sub *subscription) message() es.Message {
	sub.t.Helper()
	msg, err := sub.receive()
	require.NoErrorf(sub.t, err, "the subscription failed after %d messages", sub.next-1)
	require.Containsf(sub.t, []es.Kind{es.KindEvent, es.KindCaughtUp, es.KindCheckpoint}, msg.Kind, "message %d has an unknown kind", sub.next-1)
	if msg.Kind == es.KindEvent {
		require.Equalf(sub.t, msg.Event.Position, msg.Position, "message %d: Message.Position must be the event's position", sub.next-1)
	}
	return msg
}

// event returns the next event message, skipping checkpoints and caught-up
// messages, and the messages of streams keep rejects.
func (sub *subscription) event(keep func(es.RecordedEvent) bool) es.RecordedEvent {
	sub.t.Helper()
	for {
		msg := sub.message()
		if msg.Kind == es.KindEvent && keep(msg.Event) {
			return msg.Event
		}
	}
}

// caughtUp reads messages up to the next KindCaughtUp and returns the events
// among them that keep accepts.
func (sub *subscription) caughtUp(keep func(es.RecordedEvent) bool) []es.RecordedEvent {
	sub.t.Helper()
	var evs []es.RecordedEvent
	for {
		msg := sub.message()
		switch msg.Kind {
		case es.KindCaughtUp:
			return evs
		case es.KindEvent:
			if keep(msg.Event) {
				evs = append(evs, msg.Event)
			}
		}
	}
}

// stop cancels the subscription's context, waits for its goroutine and
// returns the error the iterator ended with (nil if it ended without one).
func (sub *subscription) stop() error {
	sub.cancel()
	select {
	case <-sub.done:
	case <-time.After(sub.timeout):
		sub.t.Errorf("the subscription did not end within %v after its context was cancelled", sub.timeout)
		return nil
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if n := len(sub.got); n > 0 {
		return sub.got[n-1].err
	}
	return nil
}

// ended waits for the iterator to end by itself and returns its last error.
func (sub *subscription) ended() error {
	sub.t.Helper()
	select {
	case <-sub.done:
	case <-time.After(sub.timeout):
		sub.t.Fatalf("the subscription did not end within %v", sub.timeout)
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if n := len(sub.got); n > 0 {
		return sub.got[n-1].err
	}
	return nil
}

func inStream(stream string) func(es.RecordedEvent) bool {
	return func(ev es.RecordedEvent) bool { return ev.Stream == stream }
}

func withPrefix(prefix string) func(es.RecordedEvent) bool {
	return func(ev es.RecordedEvent) bool { return strings.HasPrefix(ev.Stream, prefix) }
}

// expectedName names an expected revision in subtest names: Any, NoStream,
// StreamExists or Exact<n>.
func expectedName(r es.ExpectedRevision) string {
	switch {
	case r.IsAny():
		return "Any"
	case r.IsNoStream():
		return "NoStream"
	case r.IsStreamExists():
		return "StreamExists"
	}
	n, _ := r.Revision()
	return "Exact" + strconv.FormatUint(n, 10)
}
