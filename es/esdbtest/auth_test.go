package esdbtest_test

import (
	"strings"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// clientFor connects a v4 client with a given connection string.
func clientFor(t *testing.T, conn string) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(conn)
	require.NoError(t, err)
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestTLSAndCredentials(t *testing.T) {
	srv := esdbtest.New(t, esdbtest.WithTLS(), esdbtest.WithUser("bob", "s3cret"))
	assert.True(t, strings.HasPrefix(srv.ConnectionString(), "esdb://admin:changeit@127.0.0.1:"), srv.ConnectionString())
	assert.Contains(t, srv.ConnectionString(), "tls=true")

	admin := newClient(t, srv)
	appendEvents(t, admin, "s", esdb.NoStream{}, events(1)...)

	bob := clientFor(t, "esdb://bob:s3cret@"+srv.Addr()+"?tlsVerifyCert=false")
	got, err := readStream(t, bob, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Len(t, got, 1)

	anonymous := clientFor(t, "esdb://"+srv.Addr()+"?tlsVerifyCert=false")
	v, err := anonymous.GetServerVersion()
	require.NoError(t, err, "server features need no credentials")
	assert.Equal(t, 24, v.Major)
	_, err = anonymous.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{}, event("Tested"))
	require.Error(t, err)
	_, err = anonymous.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{})
	assert.Equal(t, esdb.ErrorCodeAccessDenied, errorCode(t, err))

	// Credentials of one call override the connection's.
	_, err = anonymous.DeleteStream(t.Context(), "s", esdb.DeleteStreamOptions{
		Authenticated: &esdb.Credentials{Login: "admin", Password: "changeit"},
	})
	require.NoError(t, err)

	wrong := clientFor(t, "esdb://admin:nope@"+srv.Addr()+"?tlsVerifyCert=false")
	_, err = readStream(t, wrong, "s", esdb.ReadStreamOptions{}, 10)
	assert.Equal(t, esdb.ErrorCodeUnauthenticated, errorCode(t, err))
}
