package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection/sqlproj"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The v4 client closes its connections asynchronously.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func TestRunDemo(t *testing.T) {
	store := memstore.MustNew()
	var out bytes.Buffer
	require.NoError(t, runDemo(t.Context(), &out, testApp(t, store)))

	lines := strings.Split(out.String(), "\n")
	for _, want := range []string{
		"   alice placed 1001: 1 × keyboard @ 49.90 + 2 × mouse @ 19.90 = 89.70 (version 0)",
		"   1001 shipped with tracking number 1Z-0001-DEMO (version 2)",
		`   1002 cancelled: "found it cheaper elsewhere" (version 1)`,
		"      → order.ErrInvalidTransition: order: invalid transition: cannot ship order 1003: it is pending",
		"      → order.ErrEmptyOrder: order: invalid command: an order needs at least one item",
		// The race for 1003: the cancel conflicts, is retried, and succeeds.
		"      the cancel loaded version 0 (pending) and is held just before its append",
		"      the cancel is released; its append expected version 0, but order-1003 is at 1: conflict",
		"      the repository retried: it loaded 1003 again (confirmed) and decided the cancel again",
		"      → the cancel succeeds: version 2 (cancelled)",
		// The race for 1004: the cancel conflicts, is retried, and is rejected.
		"      → the cancel is rejected: order: invalid transition: cannot cancel order 1004: it is shipped",
		"   The store reported 2 conflicts; the repository retried each, deciding again on the new state.",
		`   1003   alice     cancelled  1      22.50   cancelled 09:13: "ordered twice by mistake" (version 2)`,
		"   2         OrderCancelled  req-13          CancelOrder-13",
	} {
		assert.Contains(t, lines, want)
	}

	// The store holds what the demo says.
	assert.Equal(t, []string{"OrderPlaced", "OrderConfirmed", "OrderCancelled"}, eventTypes(t, store, "order-1003"))
	assert.Equal(t, []string{"OrderPlaced", "OrderConfirmed", "OrderShipped"}, eventTypes(t, store, "order-1004"))
	for _, rejected := range []string{"order-1005", "order-1006"} {
		for _, err := range store.ReadStream(t.Context(), rejected, es.ReadStreamOptions{}) {
			assert.ErrorIs(t, err, es.ErrStreamNotFound, rejected)
		}
	}
}

// testApp builds the application on store, with its read models in a
// SQLite file of the test's own.
func testApp(t *testing.T, store es.Store) *app {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(t.TempDir(), "orders.db")))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	a := &app{store: store, db: db, logger: slog.New(slog.DiscardHandler)}
	require.NoError(t, a.build(t.Context(), sqlproj.SQLite))
	return a
}

func eventTypes(t *testing.T, store es.Store, stream string) []string {
	t.Helper()
	var types []string
	for ev, err := range store.ReadStream(t.Context(), stream, es.ReadStreamOptions{}) {
		require.NoError(t, err)
		types = append(types, ev.Type)
	}
	return types
}

func TestRunDemo_printsTheSameEveryTime(t *testing.T) {
	var first, second bytes.Buffer
	require.NoError(t, runDemo(t.Context(), &first, testApp(t, memstore.MustNew())))
	require.NoError(t, runDemo(t.Context(), &second, testApp(t, memstore.MustNew())))
	assert.Equal(t, first.String(), second.String())
}

func TestRunDemo_reportsWriteErrors(t *testing.T) {
	errFull := errors.New("disk full")
	err := runDemo(t.Context(), failingWriter{errFull}, testApp(t, memstore.MustNew()))
	assert.ErrorIs(t, err, errFull)
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestRunDemo_stopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := runDemo(ctx, &bytes.Buffer{}, testApp(t, memstore.MustNew()))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestRun(t *testing.T) {
	// stdout and stderr are lines the outputs must contain; "" means that
	// the output must be empty.
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"demo", []string{"demo", "--data", filepath.Join(t.TempDir(), "orders.db")}, 0, "5. Where the orders stand, loaded from their events", ""},
		{"help", []string{"-h"}, 0, "usage: orders <command> [flags]", ""},
		{"help command", []string{"help"}, 0, "  demo     tell a scripted story of orders, kept in orders.db", ""},
		{"help lists bench", []string{"-h"}, 0, "  bench    drive a running service with concurrent clients, and measure it", ""},
		{"bench help", []string{"bench", "-h"}, 0, "  -clients int", ""},
		{"demo help", []string{"demo", "-h"}, 0, "usage: orders demo [flags]", ""},
		{"no command", nil, 2, "", "usage: orders <command> [flags]"},
		{"unknown command", []string{"serve-all"}, 2, "", `orders: unknown command "serve-all"`},
		{"unknown flag", []string{"demo", "-fast"}, 2, "", "orders demo: flag provided but not defined: -fast"},
		{"extra argument", []string{"demo", "now"}, 2, "", "usage: orders demo [flags]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			assert.Equal(t, tt.code, code, "exit code; stderr:\n%s", stderr.String())
			assertLine(t, tt.stdout, stdout.String(), "stdout")
			assertLine(t, tt.stderr, stderr.String(), "stderr")
		})
	}
}

// assertLine asserts that out has the line want, or is empty if want is.
func assertLine(t *testing.T, want, out, name string) {
	t.Helper()
	if want == "" {
		assert.Empty(t, out, name)
		return
	}
	assert.Contains(t, strings.Split(out, "\n"), want, name)
}

func TestRun_failure(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 1, run(ctx, []string{"demo", "--data", filepath.Join(t.TempDir(), "orders.db")}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "orders demo: ")
	assert.Contains(t, stderr.String(), context.Canceled.Error())
}

// TestDemoOnEventStoreDB runs the demo through the EventStoreDB adapter and
// the real client against the in-process server, twice: the second run uses
// new order IDs, since the store keeps the first run's orders.
func TestDemoOnEventStoreDB(t *testing.T) {
	srv := esdbtest.New(t)
	data := filepath.Join(t.TempDir(), "orders.db") // read models
	for _, first := range []string{"1001", "2001"} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"demo", "--esdb", srv.ConnectionString(), "--data", data}, &stdout, &stderr)
		require.Equal(t, 0, code, "stderr: %s", stderr.String())
		assert.Contains(t, stdout.String(), "on a *eventstoredb.Store")
		assert.Contains(t, stdout.String(), "   alice placed "+first+": ")
		assert.Contains(t, stdout.String(), "The store reported 2 conflicts")
	}
	var types []string
	for _, ev := range srv.Events("order-2003") {
		types = append(types, ev.Type)
	}
	assert.Equal(t, []string{"OrderPlaced", "OrderConfirmed", "OrderCancelled"}, types)
}

func TestDemoRejectsABadConnectionString(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"demo", "--esdb", "http://nope", "--data", filepath.Join(t.TempDir(), "orders.db")}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "invalid connection string")
}

// TestCommandsShareTheDataFile runs seed, status and replay as separate
// runs of the program would, on one data file.
func TestCommandsShareTheDataFile(t *testing.T) {
	data := filepath.Join(t.TempDir(), "orders.db")
	cmd := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append(args[:1:1], append([]string{"--data", data}, args[1:]...)...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errs := cmd("seed", "-n", "20")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "placed 20 orders")

	code, out, errs = cmd("status")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "event store: SQLite file "+data)
	assert.Contains(t, out, "order-summaries")

	code, out, errs = cmd("replay", "rebuild", "--all")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "order-summaries: rebuilt in place")
	assert.Contains(t, out, "order-details: rebuilt in place")

	code, out, errs = cmd("replay", "status", "--json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, `"order-details"`)

	code, _, errs = cmd("replay", "rebuild", "nope")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, `unknown projection "nope"`)

	code, _, _ = cmd("seed", "-n", "0")
	assert.Equal(t, 2, code)
}

// TestDataFile checks that the commands that only read the data refuse a
// file that does not exist, instead of creating an empty database, and
// that a path with URI characters is a file name.
func TestDataFile(t *testing.T) {
	dir := t.TempDir()
	cmd := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	missing := filepath.Join(dir, "typo.db")
	for _, c := range []string{"status", "replay"} {
		code, _, errs := cmd(c, "--data", missing, "status")
		if c == "status" {
			code, _, errs = cmd(c, "--data", missing)
		}
		assert.Equal(t, 1, code, c)
		assert.Contains(t, errs, "no data file "+missing, c)
		_, err := os.Stat(missing)
		assert.ErrorIs(t, err, os.ErrNotExist, "%s created no file", c)
	}

	weird := filepath.Join(dir, "we?ird#1%.db")
	code, _, errs := cmd("seed", "--data", weird, "-n", "2")
	require.Equal(t, 0, code, errs)
	_, err := os.Stat(weird)
	require.NoError(t, err, "the file is named as given")
	code, out, errs := cmd("status", "--data", weird)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "event store: SQLite file "+weird)
}

// TestReplayFlagsAnywhere checks that the infrastructure flags of replay
// may follow its subcommand, and that its help lists the subcommands.
func TestReplayFlagsAnywhere(t *testing.T) {
	data := filepath.Join(t.TempDir(), "orders.db")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(t.Context(), []string{"seed", "--data", data, "-n", "3"}, &stdout, &stderr), stderr.String())

	stdout.Reset()
	stderr.Reset()
	code := run(t.Context(), []string{"replay", "rebuild", "--all", "-data", data}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	assert.Contains(t, stdout.String(), "order-details: rebuilt in place")

	stdout.Reset()
	code = run(t.Context(), []string{"replay", "status", "--data=" + data, "--json"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	assert.Contains(t, stdout.String(), `"order-summaries"`)

	stdout.Reset()
	require.Equal(t, 0, run(t.Context(), []string{"replay", "-h"}, &stdout, &stderr))
	for _, sub := range []string{"Commands:", "list", "status", "rebuild", "drop"} {
		assert.Contains(t, stdout.String(), sub)
	}
	assert.Equal(t, 2, run(t.Context(), []string{"replay", "status", "-data"}, &stdout, &stderr), "a flag without its value")
}
