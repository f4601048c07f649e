//go:build unix

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statusChildEnv makes the test binary, run again as an unprivileged user
// by TestStatusOnAFileItCannotWrite, run "status -data <value>".
const statusChildEnv = "ORDERS_TEST_STATUS_OF"

// status reads a SQLite file that its user cannot write, in a directory it
// cannot write either (so SQLite cannot create the WAL's shared-memory
// file): it answers, and changes nothing.
func TestStatusOnAFileItCannotWrite(t *testing.T) {
	if path := os.Getenv(statusChildEnv); path != "" {
		os.Exit(run(t.Context(), []string{"status", "-data", path}, os.Stdout, os.Stderr))
	}
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o755))
	path := filepath.Join(dir, "orders.db")
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(t.Context(), []string{"seed", "-n", "3", "-data", path}, &stdout, &stderr), stderr.String())
	require.NoError(t, os.Chmod(path, 0o444))
	require.NoError(t, os.Chmod(dir, 0o555))
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	stdout.Reset()
	stderr.Reset()
	if os.Geteuid() != 0 {
		// The permissions hold for this user.
		require.Equal(t, 0, run(t.Context(), []string{"status", "-data", path}, &stdout, &stderr), stderr.String())
	} else {
		// Root writes anything: run status again as nobody, from a copy
		// of this binary that nobody may run.
		bin := filepath.Join(t.TempDir(), "orders.test")
		copyFile(t, os.Args[0], bin)
		for _, d := range []string{filepath.Dir(bin), filepath.Dir(filepath.Dir(bin)), filepath.Dir(dir)} {
			require.NoError(t, os.Chmod(d, 0o755))
		}
		cmd := exec.CommandContext(t.Context(), bin, "-test.run=^TestStatusOnAFileItCannotWrite$", "-test.count=1")
		cmd.Env = append(os.Environ(), statusChildEnv+"="+path)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), stderr.String())
	}
	assert.Contains(t, stdout.String(), "head of the log: C:")
	assert.Regexp(t, `order-summaries\s+2\s+`, stdout.String())
	assert.Regexp(t, `order-summaries/p3\s+stopped`, stdout.String(), "each partition's state")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "status wrote nothing")
	_, err = os.Stat(path + "-wal")
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}
