package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeClosesTheStoresWithinTheShutdownTimeout checks that closing the
// stores is part of the shutdown that -shutdown-timeout bounds: stores
// whose Close hangs make serve return at the timeout.
func TestServeClosesTheStoresWithinTheShutdownTimeout(t *testing.T) {
	a := sqliteApp(t, filepath.Join(t.TempDir(), "orders.db"))
	closing, release := make(chan struct{}), make(chan struct{})
	const timeout = 200 * time.Millisecond
	s := startServe(t, a, serviceConfig{}, serveConfig{shutdownTimeout: timeout, closeStores: func() error {
		close(closing)
		<-release
		return a.Close()
	}}, nil)

	start := time.Now()
	s.stop()
	err := receive(t, s.done, "serve returns")
	elapsed := time.Since(start)
	require.ErrorIs(t, err, errShutdownTimeout)
	receive(t, closing, "the stores are being closed")
	assert.GreaterOrEqual(t, elapsed, timeout)
	assert.Less(t, elapsed, timeout+2*time.Second, "serve returns soon after the timeout")
	close(release)
	receive(t, s.svc.stopped, "the service stopped")
}
