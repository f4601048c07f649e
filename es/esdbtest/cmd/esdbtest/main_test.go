package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines once every test is done. The v4
// client closes its connection asynchronously after Close returns, so the
// check keeps looking for up to ten seconds before it reports a leak.
func TestMain(m *testing.M) {
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

func TestRunServesUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-addr", "127.0.0.1:0", "-version", "23.10.0"}, w, io.Discard)
		_ = w.Close()
		done <- err
	}()

	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	conn := strings.TrimSpace(line)
	require.True(t, strings.HasPrefix(conn, "esdb://127.0.0.1:"), conn)

	cfg, err := esdb.ParseConnectionString(conn)
	require.NoError(t, err)
	cfg.Logger = esdb.NoopLogging()
	client, err := esdb.NewClient(cfg)
	require.NoError(t, err)
	_, err = client.AppendToStream(t.Context(), "s", esdb.AppendToStreamOptions{},
		esdb.EventData{EventType: "A", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)})
	require.NoError(t, err)
	v, err := client.GetServerVersion()
	require.NoError(t, err)
	assert.Equal(t, 23, v.Major)
	require.NoError(t, client.Close())

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	err := run(t.Context(), []string{"-nope"}, io.Discard, io.Discard)
	require.Error(t, err)
}
