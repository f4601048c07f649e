package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a strings.Builder safe for the server's logger.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve runs the command with args until stop is called, and returns its
// connection string and its log.
func serve(t *testing.T, args ...string) (conn string, log *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out, w := io.Pipe()
	log = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), w, log)
		_ = w.CloseWithError(io.EOF)
		done <- err
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no connection string: %v; log:\n%s", err, log)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return strings.TrimSpace(line), log, stop
}

// connect returns a v4 client for conn, closed when the test ends.
func connect(t *testing.T, conn string) *esdb.Client {
	t.Helper()
	cfg, err := esdb.ParseConnectionString(conn)
	require.NoError(t, err)
	cfg.Logger = esdb.NoopLogging()
	client, err := esdb.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func appendOne(t *testing.T, c *esdb.Client, stream string) *esdb.WriteResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := c.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{},
		esdb.EventData{EventType: "A", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)})
	require.NoError(t, err)
	return res
}

func TestRunKeepsDataAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	conn, log, stop := serve(t, "-data", dir)
	c := connect(t, conn)
	appendOne(t, c, "s")
	last := appendOne(t, c, "s")
	require.NoError(t, c.Close())
	stop()
	assert.Contains(t, log.String(), "data="+dir)
	assert.Contains(t, log.String(), "tls=off")
	assert.Contains(t, log.String(), "version=24.10.0")

	conn, log, stop = serve(t, "-data", dir)
	defer stop()
	assert.Contains(t, log.String(), "records=2")
	c = connect(t, conn)
	next := appendOne(t, c, "s")
	assert.Equal(t, uint64(2), next.NextExpectedVersion)
	assert.Greater(t, next.CommitPosition, last.CommitPosition)
}

func TestRunTLSSelfSigned(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	conn, log, stop := serve(t, "-tls-self-signed", ca, "-user", "bob:secret", "-user", "admin:s3cret")
	assert.Contains(t, conn, "tls=true")
	assert.Contains(t, conn, "admin:s3cret@")
	assert.NotContains(t, conn, "tlsVerifyCert")
	assert.Contains(t, log.String(), "users=admin,bob")
	appendOne(t, connect(t, conn), "s") // verifies the certificate with tlsCAFile
	bob := strings.Replace(conn, "admin:s3cret@", "bob:secret@", 1)
	appendOne(t, connect(t, bob), "s")
	stop()
	first, err := os.ReadFile(ca)
	require.NoError(t, err)

	_, _, stop = serve(t, "-tls-self-signed", ca) // the certificate is reused
	stop()
	again, err := os.ReadFile(ca)
	require.NoError(t, err)
	assert.Equal(t, first, again)
}

func TestRunTLSCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := generate("127.0.0.1")
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o644))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))

	conn, _, _ := serve(t, "-tls-cert", certFile, "-tls-key", keyFile, "-tls-ca", certFile)
	assert.Contains(t, conn, "tlsCAFile=")
	appendOne(t, connect(t, conn), "s")

	conn, _, _ = serve(t, "-tls-cert", certFile, "-tls-key", keyFile)
	assert.Contains(t, conn, "tls=true&tlsVerifyCert=false")
	appendOne(t, connect(t, conn), "s")

	conn, _, _ = serve(t, "-tls")
	assert.Contains(t, conn, "admin:changeit@")
	appendOne(t, connect(t, conn), "s")
}

func TestRunFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-tls", "-tls-self-signed", "x"},
		{"-insecure", "-tls"},
		{"-tls-cert", "c.pem"},
		{"-tls-ca", "ca.pem"},
		{"-user", "bob:pw"},
		{"-tls", "-user", "bob"},
		{"-tls", "-user", ":pw"},
		{"extra"},
		{"-tls-cert", "missing.pem", "-tls-key", "missing.key"},
		{"-version", "24"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a run that serves fails the test
		err := run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard, io.Discard)
		cancel()
		assert.Error(t, err, "%q", args)
	}
}

func TestRunCorruptDataDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "journal.efj"), []byte("garbage!garbage"), 0o644))
	err := run(t.Context(), []string{"-addr", "127.0.0.1:0", "-data", dir}, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "journal.efj")
}
