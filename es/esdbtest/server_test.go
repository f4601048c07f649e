package esdbtest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventfold/eventfold/es/esdbtest"
)

func TestServerFeatures(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	v, err := c.GetServerVersion()
	require.NoError(t, err)
	assert.Equal(t, esdb.ServerVersion{Major: 24, Minor: 10, Patch: 0}, *v)

	methods, err := serverfeatures.NewServerFeaturesClient(rawConn(t, srv)).GetSupportedMethods(ctxWithTimeout(t), &shared.Empty{})
	require.NoError(t, err)
	assert.Equal(t, esdbtest.DefaultServerVersion, methods.EventStoreServerVersion)
	var names []string
	for _, m := range methods.Methods {
		names = append(names, m.ServiceName+"/"+m.MethodName)
	}
	assert.Contains(t, names, "event_store.client.streams.streams/read")
	assert.Contains(t, names, "event_store.client.streams.streams/append")
	assert.Contains(t, names, "event_store.client.streams.streams/batchappend")

	srv = esdbtest.New(t, esdbtest.WithServerVersion("23.10.1"))
	v, err = newClient(t, srv).GetServerVersion()
	require.NoError(t, err)
	assert.Equal(t, esdb.ServerVersion{Major: 23, Minor: 10, Patch: 1}, *v)
}

func TestKeepalivePolicyAllowsClientPings(t *testing.T) {
	p := esdbtest.KeepalivePolicy()
	assert.True(t, p.PermitWithoutStream, "the v4 client pings without active calls")
	assert.LessOrEqual(t, p.MinTime, 10*time.Second, "the v4 client pings every 10 s")
}

func TestConnectionString(t *testing.T) {
	srv := esdbtest.New(t)
	cfg, err := esdb.ParseConnectionString(srv.ConnectionString())
	require.NoError(t, err)
	assert.True(t, cfg.DisableTLS)
	assert.Equal(t, srv.Addr(), cfg.Address)
	assert.Equal(t, 10*time.Second, cfg.KeepAliveInterval)
}

func TestCloseIsIdempotent(t *testing.T) {
	srv, err := esdbtest.Start()
	require.NoError(t, err)
	srv.Close()
	srv.Close()
	require.Error(t, srv.Restart())
}

func TestSeedAndInspect(t *testing.T) {
	clock := newFakeClock()
	srv := esdbtest.New(t, esdbtest.WithClock(clock.Now))
	id := uuid.New()
	require.NoError(t, srv.Seed("s",
		esdbtest.Event{ID: id, Type: "A", Data: []byte(`{}`), Metadata: []byte(`{"m":1}`)},
		esdbtest.Event{Type: "B", ContentType: "application/octet-stream", Data: []byte{1}},
	))
	require.Error(t, srv.Seed("s", esdbtest.Event{}), "an event needs a type")
	require.Error(t, srv.Seed("", esdbtest.Event{Type: "A"}))

	evs := srv.Events("s")
	require.Len(t, evs, 2)
	assert.Equal(t, id, evs[0].ID)
	assert.Equal(t, "s", evs[0].Stream)
	assert.Equal(t, "A", evs[0].Type)
	assert.Equal(t, "application/json", evs[0].ContentType)
	assert.Equal(t, clock.Now(), evs[0].Created)
	assert.Equal(t, []byte(`{"m":1}`), evs[0].Metadata)
	assert.Equal(t, uint64(1), evs[1].Revision)
	assert.Equal(t, "application/octet-stream", evs[1].ContentType)
	assert.Nil(t, srv.Events("missing"))

	c := newClient(t, srv)
	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{0, 1}, revisions(got))
	assert.Equal(t, clock.Now().UTC(), got[0].CreatedDate)

	_, err = c.TombstoneStream(t.Context(), "s", esdb.TombstoneStreamOptions{})
	require.NoError(t, err)
	require.Error(t, srv.Seed("s", esdbtest.Event{Type: "A"}))
	assert.Len(t, srv.All(), 3)
}

func TestInjectedErrors(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)

	// The client may see an early failure of a client-streaming call as
	// io.EOF on Send and lose the status, so only unary and server
	// streaming calls have their codes checked.
	srv.FailNext(esdbtest.MethodAppend, 2, status.Error(codes.PermissionDenied, "nope"))
	for range 2 {
		_, err := c.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{}, event("Tested"))
		require.Error(t, err)
	}
	appendEvents(t, c, "s", esdb.Any{}, event("Tested"))

	srv.FailNext(esdbtest.MethodDelete, 1, status.Error(codes.PermissionDenied, "nope"))
	_, err := c.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{})
	assert.Equal(t, esdb.ErrorCodeAccessDenied, errorCode(t, err))

	srv.SetError(esdbtest.MethodRead, errors.New("boom"))
	for range 3 {
		_, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
		assert.Equal(t, esdb.ErrorCodeUnknown, errorCode(t, err))
	}
	srv.SetError(esdbtest.MethodRead, nil)
	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

func TestRestartDropsConnectionsAndKeepsData(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)
	sub := subscribeStream(t, c, "s", esdb.Start{})
	assert.Equal(t, []string{"s/0", "caught-up"}, sub.take(t, 2))

	require.NoError(t, srv.Restart())
	ev := sub.nextEvent(t)
	require.NotNil(t, ev.SubscriptionDropped)

	// The client reconnects; poll until it has.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for {
		_, err := c.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, event("Tested"))
		if err == nil {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("client did not reconnect: %v", err)
		}
	}
	got, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{0, 1}, revisions(got))
}

func TestDiscoverThroughGossip(t *testing.T) {
	srv := esdbtest.New(t)
	cfg, err := esdb.ParseConnectionString("esdb+discover://" + srv.Addr() + "?tls=false")
	require.NoError(t, err)
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	require.NoError(t, err)
	defer c.Close()
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)
	assert.Len(t, srv.Events("s"), 1)
}

func TestNotLeaderMovesTheClient(t *testing.T) {
	follower := esdbtest.New(t)
	leader := esdbtest.New(t)
	c := newClient(t, follower)
	appendEvents(t, c, "s", esdb.NoStream{}, events(1)...)

	follower.FailNext(esdbtest.MethodRead, 1, esdbtest.NotLeader(leader.Addr()))
	_, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	assert.Equal(t, esdb.ErrorCodeNotLeader, errorCode(t, err))

	// The client now talks to the leader.
	appendEvents(t, c, "on-leader", esdb.NoStream{}, events(1)...)
	assert.Len(t, leader.Events("on-leader"), 1)
	assert.Empty(t, follower.Events("on-leader"))
}
