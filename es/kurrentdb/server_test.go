package kurrentdb_test

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// esdbtestBinary is the esdbtest command, built once by TestMain: this
// package links KurrentDB-Client-Go, which cannot share a binary with the
// v4 client that package esdbtest links, so its tests run the server as a
// child process.
var esdbtestBinary string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kurrentdb-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "kurrentdb tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go") //lint:ignore SA1019 the test runs where it was built
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "esdbtest")
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", bin, "github.com/eventfold/eventfold/es/esdbtest/cmd/esdbtest")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "kurrentdb tests: building the esdbtest command:", err)
		return 1
	}
	esdbtestBinary = bin
	return m.Run()
}

// server is an esdbtest command running for a test.
type server struct {
	conn    string // its connection string
	cmd     *exec.Cmd
	stopped chan struct{} // closed when the process has ended
}

// stop kills the server and waits for its end.
func (s *server) stop() {
	_ = s.cmd.Process.Kill()
	<-s.stopped
}

// addr is the server's host:port.
func (s *server) addr(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(s.conn)
	require.NoError(t, err)
	return u.Host
}

// startServer starts the esdbtest command on a free loopback port,
// reporting version, and stops it when the test ends.
func startServer(t testing.TB, version string, args ...string) *server {
	t.Helper()
	return startServerAt(t, "127.0.0.1:0", version, args...)
}

// startServerAt starts the esdbtest command on addr.
func startServerAt(t testing.TB, addr, version string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(esdbtestBinary, append([]string{"-addr", addr, "-version", version}, args...)...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	logs, err := os.Create(filepath.Join(t.TempDir(), "esdbtest.log"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = logs.Close() })
	cmd.Stderr = logs
	require.NoError(t, cmd.Start())
	stopped := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(stopped)
	}()
	srv := &server{cmd: cmd, stopped: stopped}
	t.Cleanup(srv.stop)
	lines := make(chan string, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		for sc.Scan() { // drain until the process ends
		}
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("esdbtest printed no connection string: %s", b)
		}
		srv.conn = strings.TrimSpace(line)
		return srv
	case <-time.After(30 * time.Second):
		t.Fatalf("esdbtest did not start within 30s")
	}
	return nil
}

// runESDBTest starts the esdbtest command reporting version for an
// example, and returns its connection string and a function that stops it.
func runESDBTest(version string) (conn string, stop func()) {
	cmd := exec.Command(esdbtestBinary, "-addr", "127.0.0.1:0", "-version", version)
	out, err := cmd.StdoutPipe()
	if err != nil {
		panic(err)
	}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		panic(fmt.Sprintf("esdbtest printed no connection string: %v", err))
	}
	return strings.TrimSpace(line), stop
}
