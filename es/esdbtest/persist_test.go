package esdbtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// recorded is what a restart must keep of an event.
type recorded struct {
	Stream   string
	Revision uint64
	Commit   uint64
	ID       uuid.UUID
	Type     string
	Data     string
	Meta     string
	Created  int64
}

func snapshot(evs []*esdb.RecordedEvent) []recorded {
	out := make([]recorded, len(evs))
	for i, e := range evs {
		out[i] = recorded{e.StreamID, e.EventNumber, e.Position.Commit, e.EventID, e.EventType,
			string(e.Data), string(e.UserMetadata), e.CreatedDate.UnixNano() / 100}
	}
	return out
}

// startOn starts a server on dir and returns it and a client.
func startOn(t *testing.T, dir string) (*esdbtest.Server, *esdb.Client) {
	t.Helper()
	srv, err := esdbtest.Start(esdbtest.WithDataDir(dir))
	require.NoError(t, err)
	return srv, newClient(t, srv)
}

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv, c := startOn(t, dir)
	appendEvents(t, c, "order-1", esdb.NoStream{}, events(3)...)
	appendEvents(t, c, "order-2", esdb.Any{}, events(2)...)
	_, err := c.SetStreamMetadata(ctxWithTimeout(t), "order-2", esdb.AppendToStreamOptions{},
		esdb.StreamMetadata{})
	require.NoError(t, err)
	_, err = c.DeleteStream(ctxWithTimeout(t), "order-2", esdb.DeleteStreamOptions{})
	require.NoError(t, err)
	_, err = c.TombstoneStream(ctxWithTimeout(t), "order-3", esdb.TombstoneStreamOptions{})
	require.NoError(t, err)
	before := snapshot(readAll(t, c, esdb.ReadAllOptions{}, 1000))
	require.NoError(t, c.Close())
	srv.Close()

	srv, c = startOn(t, dir)
	defer srv.Close()
	after := snapshot(readAll(t, c, esdb.ReadAllOptions{}, 1000))
	assert.Equal(t, before, after)

	_, err = readStream(t, c, "order-2", esdb.ReadStreamOptions{}, 10)
	assert.Equal(t, esdb.ErrorCodeResourceNotFound, errorCode(t, err), "soft delete survives")
	_, err = readStream(t, c, "order-3", esdb.ReadStreamOptions{}, 10)
	assert.Equal(t, esdb.ErrorCodeStreamDeleted, errorCode(t, err), "tombstone survives")

	// Appends continue where the log stopped: revisions and positions.
	retry := readAll(t, c, esdb.ReadAllOptions{}, 1)[0]
	res := appendEvents(t, c, "order-1", esdb.Revision(2), event("Next"))
	assert.Equal(t, uint64(3), res.NextExpectedVersion)
	assert.Greater(t, res.CommitPosition, before[len(before)-1].Commit)
	// Event IDs are still known: re-appending the first event is idempotent.
	again := appendEvents(t, c, "order-1", esdb.Any{}, esdb.EventData{
		EventID: retry.EventID, EventType: retry.EventType, ContentType: esdb.ContentTypeJson, Data: retry.Data,
	})
	assert.Equal(t, uint64(0), again.NextExpectedVersion)
	require.NoError(t, c.Close())
	srv.Close()

	srv, c = startOn(t, dir)
	defer srv.Close()
	evs, err := readStream(t, c, "order-1", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{0, 1, 2, 3}, revisions(evs))
}

func TestDataDirTornRecordIsDropped(t *testing.T) {
	dir := t.TempDir()
	srv, c := startOn(t, dir)
	appendEvents(t, c, "s", esdb.NoStream{}, events(2)...)
	appendEvents(t, c, "s", esdb.Revision(1), event("Last"))
	require.NoError(t, c.Close())
	srv.Close()

	path := filepath.Join(dir, esdbtest.JournalFile)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, info.Size()-5)) // mid-way through the last record

	srv, c = startOn(t, dir)
	evs, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{0, 1}, revisions(evs))
	res := appendEvents(t, c, "s", esdb.Revision(1), event("Again"))
	assert.Equal(t, uint64(2), res.NextExpectedVersion)
	require.NoError(t, c.Close())
	srv.Close()

	srv, c = startOn(t, dir) // the torn tail was cut: the new record loads
	defer srv.Close()
	evs, err = readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{0, 1, 2}, revisions(evs))
	assert.Equal(t, "Again", evs[2].EventType)
}

func TestDataDirCorruptionIsAnError(t *testing.T) {
	dir := t.TempDir()
	srv, c := startOn(t, dir)
	appendEvents(t, c, "s", esdb.NoStream{}, events(3)...)
	require.NoError(t, c.Close())
	srv.Close()

	path := filepath.Join(dir, esdbtest.JournalFile)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[30] ^= 0xff // inside the first record, with records after it
	require.NoError(t, os.WriteFile(path, b, 0o644))

	_, err = esdbtest.Start(esdbtest.WithDataDir(dir))
	var corrupt *esdbtest.CorruptJournalError
	require.ErrorAs(t, err, &corrupt)
	assert.Equal(t, path, corrupt.File)
	assert.Equal(t, int64(8), corrupt.Offset)
	assert.Contains(t, err.Error(), path)

	require.NoError(t, os.WriteFile(path, []byte("not a journal"), 0o644))
	_, err = esdbtest.Start(esdbtest.WithDataDir(dir))
	require.ErrorAs(t, err, &corrupt)
}

func TestDataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	srv, err := esdbtest.Start(esdbtest.WithDataDir(dir))
	require.NoError(t, err)
	_, err = esdbtest.Start(esdbtest.WithDataDir(dir))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "in use")
	srv.Close()
	srv, err = esdbtest.Start(esdbtest.WithDataDir(dir))
	require.NoError(t, err)
	srv.Close()
}

const crashChildEnv = "ESDBTEST_CRASH_CHILD_DIR"

// crashChild is the process TestDataDirCrash kills (TestMain runs it when
// crashChildEnv names a data directory): a server on that directory that
// prints its connection string and serves until its input closes.
func crashChild(dir string) error {
	srv, err := esdbtest.Start(esdbtest.WithDataDir(dir))
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println("CONN " + srv.ConnectionString())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func TestDataDirCrash(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	conn := ""
	lines := bufio.NewScanner(stdout)
	for conn == "" && lines.Scan() {
		conn, _ = strings.CutPrefix(lines.Text(), "CONN ")
	}
	require.NotEmpty(t, conn, "the child printed no connection string")
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	cfg, err := esdb.ParseConnectionString(conn)
	require.NoError(t, err)
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	require.NoError(t, err)
	defer c.Close()

	// Four writers append until the child dies; an append counts once
	// acknowledged.
	var mu sync.Mutex
	var acked []uuid.UUID
	var wg sync.WaitGroup
	enough := make(chan struct{})
	var once sync.Once
	for w := range 4 {
		wg.Go(func() {
			for {
				ev := event("Crash")
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				_, err := c.AppendToStream(ctx, fmt.Sprintf("crash-%d", w), esdb.AppendToStreamOptions{}, ev)
				cancel()
				if err != nil {
					return
				}
				mu.Lock()
				acked = append(acked, ev.EventID)
				if len(acked) == 200 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(waitTimeout):
		t.Fatal("appends too slow")
	}
	require.NoError(t, cmd.Process.Kill()) // SIGKILL, mid-appends
	killed = true
	_ = cmd.Wait()
	wg.Wait()
	require.NoError(t, c.Close())

	srv, c2 := startOn(t, dir)
	defer srv.Close()
	have := make(map[uuid.UUID]bool)
	for _, e := range readAll(t, c2, esdb.ReadAllOptions{}, 100000) {
		have[e.EventID] = true
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range acked {
		require.True(t, have[id], "acknowledged event %s lost", id)
	}
	t.Logf("%d acknowledged, %d loaded", len(acked), len(have))
}

func TestDataDirOptions(t *testing.T) {
	_, err := esdbtest.Start(esdbtest.WithDataDir(""), esdbtest.WithLogger(nil))
	require.ErrorIs(t, err, esdbtest.ErrInvalidOption)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = esdbtest.Start(esdbtest.WithDataDir(filepath.Join(file, "sub")))
	require.Error(t, err)
	assert.False(t, errors.Is(err, esdbtest.ErrInvalidOption))
}
