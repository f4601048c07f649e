package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// orderBody is a POST /orders body for the order id.
func orderBody(id string) string {
	return fmt.Sprintf(`{"orderId":%q,"customerId":"alice","items":[{"productId":"keyboard","quantity":1,"unitPrice":4990}]}`, id)
}

// The replay tool beside a running serve on the default SQLite file: an
// in-place rebuild waits for the read models' leases and says who holds
// them, and the service goes on; a blue/green rebuild builds the next
// versions beside the service and switches, and the service follows: the
// orders placed after the switch reach the new versions.
func TestRebuildBesideServeOnSQLite(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "orders.db")
	a := sqliteApp(t, path)
	s := startServe(t, a, serviceConfig{}, serveConfig{}, nil)
	res := receive(t, post(s.url+"/orders", orderBody("before")), "the first order")
	require.Equal(t, http.StatusCreated, res.status, res.body)

	// In place: it waits for the service's lease, names the service, and
	// gives up when interrupted, having reset nothing.
	short, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(short, []string{"replay", "rebuild", "--all", "--progress", "lines", "-data", path}, &stdout, &stderr)
	assert.NotEqual(t, 0, code, "interrupted while it waited")
	assert.Contains(t, stdout.String(), "waiting for the projection's lease, which orders, pid ", stdout.String()+stderr.String())
	assert.Contains(t, stdout.String(), "(stop it, or rebuild with --blue-green beside it)")
	ready, err := http.Get(s.url + "/readyz")
	require.NoError(t, err)
	ready.Body.Close()
	assert.Equal(t, http.StatusOK, ready.StatusCode, "the service is untouched")
	get, err := http.Get(s.url + "/orders/before")
	require.NoError(t, err)
	get.Body.Close()
	assert.Equal(t, http.StatusOK, get.StatusCode, "its read models were not reset")

	// Blue/green: built beside the service, which follows the switch.
	stdout.Reset()
	stderr.Reset()
	code = run(ctx, []string{"replay", "rebuild", "--all", "--blue-green", "--progress", "none", "-data", path}, &stdout, &stderr)
	require.Equal(t, 0, code, stdout.String()+stderr.String())
	assert.Contains(t, stdout.String(), "switched to it")
	for i := range 3 {
		id := fmt.Sprintf("after-%d", i)
		res := receive(t, post(s.url+"/orders", orderBody(id)), "an order after the switch")
		require.Equal(t, http.StatusCreated, res.status, "the service applies the new orders to the new versions: %v", res.body)
		get, err := http.Get(s.url + "/orders/" + id)
		require.NoError(t, err)
		get.Body.Close()
		assert.Equal(t, http.StatusOK, get.StatusCode)
	}

	// status, from another process, says who runs the read models (the
	// service follows a switch within a few seconds, or at once when a
	// request waits for the switched read model).
	require.Eventually(t, func() bool {
		stdout.Reset()
		stderr.Reset()
		require.Equal(t, 0, run(ctx, []string{"status", "-data", path}, &stdout, &stderr), stderr.String())
		return regexp.MustCompile(`order-summaries\s+3\s+running elsewhere \(orders, pid \d+ on `).MatchString(stdout.String()) &&
			regexp.MustCompile(`order-details\s+3\s+running elsewhere \(orders, pid \d+ on `).MatchString(stdout.String()) &&
			regexp.MustCompile(`order-details/p3\s+running elsewhere \(orders, pid \d+ on `).MatchString(stdout.String())
	}, 10*time.Second, 50*time.Millisecond, "status names the service that runs version 3, and each partition")
}

// A second serve on the same SQLite file is refused up front, naming the
// first; once the first has stopped, a new one starts.
func TestSecondServeOnOneSQLiteFileIsRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "orders.db")
	first := openTestApp(t, infra{data: path, command: "orders serve"}, quietLogger())
	require.NoError(t, first.serveAlone(ctx, path))

	second := openTestApp(t, infra{data: path, command: "orders serve"}, quietLogger())
	err := second.serveAlone(ctx, path)
	require.ErrorIs(t, err, errServedAlready)
	assert.Regexp(t, `orders\.db is served by orders serve, pid \d+ on .*: one serve per SQLite file`, err.Error())

	require.NoError(t, first.Close()) // gives the lease back
	require.NoError(t, second.serveAlone(ctx, path))
}
