package esdbtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// waitTimeout bounds every wait for something the server must send.
const waitTimeout = 10 * time.Second

// TestMain checks for leaked goroutines once every test is done. The v4
// client closes its connection asynchronously after Close returns, so the
// check keeps looking for up to ten seconds before it reports a leak.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		// The server TestDataDirCrash kills, not a test run.
		if err := crashChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		for err := goleak.Find(); err != nil; err = goleak.Find() { // Find retries with backoff
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
				break
			}
		}
	}
	os.Exit(code)
}

// newClient connects a v4 client to srv and closes it when the test ends.
func newClient(t testing.TB, srv *esdbtest.Server) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(srv.ConnectionString())
	require.NoError(t, err)
	cfg.Logger = esdb.NoopLogging()
	client, err := esdb.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// rawConn opens a plain gRPC connection to srv for the generated clients.
func rawConn(t testing.TB, srv *esdbtest.Server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// event returns a JSON event of the given type with a fresh ID.
func event(eventType string) esdb.EventData {
	return esdb.EventData{
		EventID:     uuid.New(),
		EventType:   eventType,
		ContentType: esdb.ContentTypeJson,
		Data:        []byte(`{"n":1}`),
		Metadata:    []byte(`{"$correlationId":"c"}`),
	}
}

// events returns n events of type "Tested".
func events(n int) []esdb.EventData {
	out := make([]esdb.EventData, n)
	for i := range out {
		out[i] = event("Tested")
	}
	return out
}

// appendEvents appends events with the given expected revision.
func appendEvents(t testing.TB, c *esdb.Client, stream string, exp esdb.ExpectedRevision, evs ...esdb.EventData) *esdb.WriteResult {
	t.Helper()
	res, err := c.AppendToStream(t.Context(), stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, evs...)
	require.NoError(t, err)
	return res
}

// collect reads a whole read stream.
func collect(rs *esdb.ReadStream, openErr error) ([]*esdb.RecordedEvent, error) {
	if openErr != nil {
		return nil, openErr
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev.OriginalEvent())
	}
}

// readStream reads a stream with the client.
func readStream(t testing.TB, c *esdb.Client, stream string, opts esdb.ReadStreamOptions, count uint64) ([]*esdb.RecordedEvent, error) {
	t.Helper()
	rs, err := c.ReadStream(t.Context(), stream, opts, count)
	return collect(rs, err)
}

// readAll reads `$all` with the client.
func readAll(t testing.TB, c *esdb.Client, opts esdb.ReadAllOptions, count uint64) []*esdb.RecordedEvent {
	t.Helper()
	rs, err := c.ReadAll(t.Context(), opts, count)
	evs, err := collect(rs, err)
	require.NoError(t, err)
	return evs
}

// revisions returns the revisions of events.
func revisions(evs []*esdb.RecordedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.EventNumber
	}
	return out
}

// errorCode returns the client error code of err.
func errorCode(t testing.TB, err error) esdb.ErrorCode {
	t.Helper()
	require.Error(t, err)
	var esErr *esdb.Error
	require.ErrorAs(t, err, &esErr)
	return esErr.Code()
}

// subscription pumps a client subscription into a channel so that tests
// can wait for messages with a deadline.
type subscription struct {
	sub  *esdb.Subscription
	ch   chan *esdb.SubscriptionEvent
	stop chan struct{}
	done chan struct{}
}

// watch starts pumping sub; the pump stops when the test ends.
func watch(t testing.TB, sub *esdb.Subscription) *subscription {
	t.Helper()
	s := &subscription{
		sub:  sub,
		ch:   make(chan *esdb.SubscriptionEvent),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		for {
			ev := sub.Recv()
			select {
			case s.ch <- ev:
			case <-s.stop:
				return
			}
			if ev.SubscriptionDropped != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(s.stop)
		_ = sub.Close()
		<-s.done
	})
	return s
}

// next returns the next subscription message in a compact form:
// "stream/revision" for an event, "caught-up", "checkpoint" or "dropped".
func (s *subscription) next(t testing.TB) string {
	t.Helper()
	ev := s.nextEvent(t)
	return describe(ev)
}

// nextEvent returns the next subscription message.
func (s *subscription) nextEvent(t testing.TB) *esdb.SubscriptionEvent {
	t.Helper()
	select {
	case ev := <-s.ch:
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a subscription message")
		return nil
	}
}

// take returns the next n messages in compact form.
func (s *subscription) take(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = s.next(t)
	}
	return out
}

func describe(ev *esdb.SubscriptionEvent) string {
	switch {
	case ev.EventAppeared != nil:
		e := ev.EventAppeared.OriginalEvent()
		return fmt.Sprintf("%s/%d", e.StreamID, e.EventNumber)
	case ev.CaughtUp != nil:
		return "caught-up"
	case ev.CheckPointReached != nil:
		return fmt.Sprintf("checkpoint@%d", ev.CheckPointReached.Commit)
	case ev.SubscriptionDropped != nil:
		return "dropped"
	case ev.FellBehind != nil:
		return "fell-behind"
	default:
		return "unknown"
	}
}

// ctxWithTimeout returns a context for one call.
func ctxWithTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}
