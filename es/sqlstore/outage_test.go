package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/internal/faultproxy"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// throughProxy starts a faultproxy in front of the PostgreSQL server of
// rawURL and returns rawURL with the proxy's address instead.
func throughProxy(t *testing.T, rawURL string) (*faultproxy.Proxy, string) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(rawURL)
	require.NoError(t, err)
	p := faultproxy.Start(t, fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port))
	u, err := url.Parse(rawURL)
	require.NoError(t, err, "EVENTFOLD_TEST_POSTGRES must be a URL for this test")
	u.Host = p.Addr()
	return p, u.String()
}

// countingHandler counts the log records by message.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[r.Message]++
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) all() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.counts)
}

func (h *countingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[msg]
}

// appender appends to a stream of its own, one event at a time with the
// expected revision, and records what it was told.
type appender struct {
	stream string
	next   uint64      // the revision of the next event, as far as it knows
	ok     []uuid.UUID // events whose append succeeded, in order
	failed []uuid.UUID // events whose append failed with a database error
	// cancelled is the event whose append was under way when the appender
	// stopped (uuid.Nil if none): it may still be committed.
	cancelled uuid.UUID
	// failures counts the failed appends, for the test to read while the
	// appender runs.
	failures atomic.Int64
}

// run appends until ctx ends. After a failure it reads the stream (retrying
// until it can) to learn where it stands: a failed append may have been
// written, and nothing in the error says whether.
func (a *appender) run(ctx context.Context, store *sqlstore.Store, succeeded *atomic.Int64) error {
	for ctx.Err() == nil {
		id := uuid.New()
		expected := es.NoStream
		if a.next > 0 {
			expected = es.Exact(a.next - 1)
		}
		_, err := store.Append(ctx, a.stream, expected, es.EventData{ID: id, Type: "Tick", Data: []byte(`{}`)})
		switch {
		case err == nil:
			a.ok = append(a.ok, id)
			a.next++
			succeeded.Add(1)
			continue
		case ctx.Err() != nil:
			// Stopped while its append was under way: the append may
			// still be committed (see the store's writer).
			a.cancelled = id
			return nil
		case errors.Is(err, es.ErrWrongExpectedVersion):
			return fmt.Errorf("%s: %w (the appender lost track of its stream)", a.stream, err)
		}
		a.failed = append(a.failed, id)
		a.failures.Add(1)
		for ctx.Err() == nil {
			n, err := streamLength(ctx, store, a.stream)
			if err == nil {
				a.next = n
				break
			}
			time.Sleep(10 * time.Millisecond) // the pace of the retries
		}
	}
	return nil
}

// streamLength returns how many events stream has.
func streamLength(ctx context.Context, store *sqlstore.Store, stream string) (uint64, error) {
	var n uint64
	for _, err := range store.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
		if errors.Is(err, es.ErrStreamNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// TestPostgresConnectionsCutUnderLoad resets and then cuts the connections
// to PostgreSQL while 8 appenders write and a projection runner (its
// checkpoints, lease and read model in the same database, with
// WithRestart) applies what they write. After recovery: every append that
// succeeded is in the log once, in order; the read model holds every event
// of the log once; its checkpoint reaches the head; the runner retried its
// batches and restarted instead of stopping, and no event was
// dead-lettered.
func TestPostgresConnectionsCutUnderLoad(t *testing.T) {
	rawURL := postgresURL(t)
	schema := newSchema(t, rawURL)
	p, proxied := throughProxy(t, rawURL)
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)

	store, err := postgres.Open(ctx, proxied, sqlstore.WithSchema(schema),
		sqlstore.WithPollInterval(50*time.Millisecond), sqlstore.WithLogger(quiet))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })

	// The read model and the checkpoints, in the store's schema.
	db, err := sql.Open("pgx", proxied+"&search_path="+schema)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	logs := &countingHandler{counts: make(map[string]int)}
	cps, err := sqlproj.New(ctx, db, sqlproj.Postgres, sqlproj.WithLogger(quiet), sqlproj.WithLeasePoll(50*time.Millisecond))
	require.NoError(t, err)
	const name = "outage-seen"
	runner, err := projection.NewRunner(store, cps, nil, projection.Projection[*sql.Tx]{
		Name: name,
		Setup: func(ctx context.Context, tx *sql.Tx, _ int) error {
			_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS outage_seen (id uuid PRIMARY KEY, stream text NOT NULL, revision bigint NOT NULL)`)
			return err
		},
		Handle: func(ctx context.Context, tx *sql.Tx, b projection.Batch) error {
			for _, ev := range b.Events {
				// The primary key refuses an event applied twice.
				if _, err := tx.ExecContext(ctx, `INSERT INTO outage_seen (id, stream, revision) VALUES ($1, $2, $3)`,
					ev.ID, ev.Stream, int64(ev.Revision)); err != nil {
					return err
				}
			}
			return nil
		},
	}, projection.WithLogger(slog.New(logs)), projection.WithSkipPoison(cps),
		projection.WithRestart(50*time.Millisecond, time.Second), projection.WithBatch(50, 10*time.Millisecond))
	require.NoError(t, err)
	runCtx, stopRunner := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- runner.Run(runCtx) }()
	t.Cleanup(func() {
		stopRunner()
		<-runDone
	})

	// The appenders.
	appCtx, stopAppenders := context.WithCancel(ctx)
	defer stopAppenders()
	var succeeded atomic.Int64
	appenders := make([]*appender, 8)
	appendErrs := make(chan error, len(appenders))
	var wg sync.WaitGroup
	for i := range appenders {
		a := &appender{stream: fmt.Sprintf("outage-%d", i)}
		appenders[i] = a
		wg.Go(func() { appendErrs <- a.run(appCtx, store, &succeeded) })
	}
	t.Cleanup(func() {
		stopAppenders()
		wg.Wait()
	})
	// progress waits until n more appends have succeeded.
	progress := func(n int64, what string) {
		t.Helper()
		want := succeeded.Load() + n
		deadline := time.Now().Add(15 * time.Second)
		for succeeded.Load() < want {
			require.True(t, time.Now().Before(deadline), "%s: %d appends succeeded, want %d", what, succeeded.Load(), want)
			time.Sleep(5 * time.Millisecond) // polling, with a deadline
		}
	}

	failures := func() int64 {
		var n int64
		for _, a := range appenders {
			n += a.failures.Load()
		}
		return n
	}
	progress(50, "before the faults")
	for i := range 5 {
		p.Reset()
		progress(30, fmt.Sprintf("after reset %d", i+1))
	}
	// A reset breaks the group of appends under way: the store's writer
	// runs it again on a new connection (all of it if its COMMIT was not
	// sent, its appends anyway: they are idempotent), so that the
	// appenders do not see it.
	assert.Zero(t, failures(), "appends failed because of the resets")
	p.Cut()
	cut := time.Now()
	<-time.After(time.Second) // the outage lasts a second
	p.Restore()
	t.Logf("cut for %v", time.Since(cut).Round(time.Millisecond))
	progress(100, "after the cut")
	stopAppenders()
	wg.Wait()
	close(appendErrs)
	for err := range appendErrs {
		require.NoError(t, err)
	}
	// The store's writer runs the writes in turn: once this one is done,
	// so are those that the appenders left under way.
	_, err = store.Append(ctx, "barrier", es.Any, es.EventData{Type: "Barrier"})
	require.NoError(t, err)

	// The log: every append that succeeded, once, in order per stream.
	head := es.Start
	logged := make(map[uuid.UUID]es.RecordedEvent)
	byStream := make(map[string][]uuid.UUID)
	for ev, err := range store.ReadAll(ctx, es.ReadAllOptions{}) {
		require.NoError(t, err)
		_, dup := logged[ev.ID]
		require.False(t, dup, "event %v is in the log twice", ev.ID)
		logged[ev.ID] = ev
		head = ev.Position
		byStream[ev.Stream] = append(byStream[ev.Stream], ev.ID)
		require.Equal(t, uint64(len(byStream[ev.Stream])-1), ev.Revision, "revisions follow each other in %s", ev.Stream)
	}
	present, absent, cancelled := 0, 0, 0
	for _, a := range appenders {
		i := 0
		for _, id := range byStream[a.stream] {
			if i < len(a.ok) && id == a.ok[i] {
				i++
			}
		}
		require.Equal(t, len(a.ok), i, "%s: the successful appends are in the log, in order", a.stream)
		for _, id := range a.failed {
			if _, ok := logged[id]; ok {
				present++
			} else {
				absent++
			}
		}
		_, ok := logged[a.cancelled]
		if ok {
			cancelled++
		}
		require.Len(t, byStream[a.stream], len(a.ok)+countIn(a.failed, logged)+countIn([]uuid.UUID{a.cancelled}, logged),
			"%s holds only the appender's events", a.stream)
	}
	// Neither the appenders nor anyone could tell from the errors which
	// failed appends were written.
	t.Logf("%d events in the log (with the barrier); %d appends failed with a database error: %d of them were written all the same, %d were not; "+
		"of the %d appends under way when the appenders stopped, %d were written",
		len(logged), present+absent, present, absent, len(appenders), cancelled)

	// The read model: every event of the log, once, and the checkpoint at
	// the head.
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := runner.WaitFor(waitCtx, head); err != nil {
		st, serr := runner.Status(ctx)
		t.Fatalf("the runner does not reach the head %v of the log: %v; its status: %+v (%v); its log: %v", head, err, st, serr, logs.all())
	}
	var st projection.Status
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) { // polling, with a deadline
		st, err = runner.Status(ctx)
		require.NoError(t, err)
		if st.State == projection.StateLive || time.Now().After(deadline) {
			break
		}
	}
	assert.Equal(t, projection.StateLive, st.State, "the runner goes on: %v", st.Err)
	assert.GreaterOrEqual(t, st.Checkpoint.Compare(head), 0, "the checkpoint %v reaches the head %v", st.Checkpoint, head)
	t.Logf("the runner restarted %d times, retried %d batches", st.Restarts, logs.count("projection: batch failed; retrying"))

	seen := make(map[uuid.UUID]bool)
	rows, err := db.QueryContext(ctx, `SELECT id FROM outage_seen`)
	require.NoError(t, err)
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		seen[id] = true
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	assert.Equal(t, len(logged), len(seen), "the read model holds as many events as the log")
	for id := range logged {
		assert.True(t, seen[id], "event %v is in the read model", id)
	}

	dead, err := cps.DeadLetters(ctx, name)
	require.NoError(t, err)
	assert.Empty(t, dead, "no event was dead-lettered")
	assert.Zero(t, logs.count("projection: skipping a poison event"))

	select {
	case err := <-runDone:
		t.Fatalf("the runner stopped: %v", err)
	default:
	}
}

// countIn counts the ids that are in the log.
func countIn(ids []uuid.UUID, logged map[uuid.UUID]es.RecordedEvent) int {
	n := 0
	for _, id := range ids {
		if _, ok := logged[id]; ok {
			n++
		}
	}
	return n
}
