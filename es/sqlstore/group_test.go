package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore"
	"github.com/eventfold/eventfold/es/sqlstore/postgres"
	"github.com/eventfold/eventfold/es/sqlstore/sqlite"
)

// groupStore is a store whose writer can be held, so that writes queue up
// and are committed as one group.
type groupStore struct {
	*sqlstore.Store
	hold    chan struct{} // receives once per group the writer may start
	mu      sync.Mutex
	groups  []int // the size of each group, in order
	explode func(t *testing.T)
}

// openGroupStores returns a new store on each database, with its writer
// held: each group waits for a value on hold.
func openGroupStores(t *testing.T) map[string]func(t *testing.T) *groupStore {
	return map[string]func(t *testing.T) *groupStore{
		"SQLite": func(t *testing.T) *groupStore {
			path := filepath.Join(t.TempDir(), "events.db")
			s, err := sqlite.Open(t.Context(), path)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			g := newGroupStore(s)
			g.explode = func(t *testing.T) {
				db, err := sql.Open("sqlite", path)
				require.NoError(t, err)
				defer db.Close()
				_, err = db.ExecContext(t.Context(), `CREATE TRIGGER boom BEFORE INSERT ON eventfold_events
					WHEN NEW.type = 'Boom' BEGIN SELECT RAISE(ABORT, 'boom'); END`)
				require.NoError(t, err)
			}
			return g
		},
		"Postgres": func(t *testing.T) *groupStore {
			url := postgresURL(t)
			schema := newSchema(t, url)
			s, err := postgres.Open(t.Context(), url, sqlstore.WithSchema(schema))
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			g := newGroupStore(s)
			g.explode = func(t *testing.T) {
				conn, err := pgx.Connect(t.Context(), url)
				require.NoError(t, err)
				defer conn.Close(context.WithoutCancel(t.Context()))
				q := pgx.Identifier{schema}.Sanitize()
				_, err = conn.Exec(t.Context(), `CREATE FUNCTION `+q+`.boom() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN IF NEW.type = 'Boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$`)
				require.NoError(t, err)
				_, err = conn.Exec(t.Context(), `CREATE TRIGGER boom BEFORE INSERT ON `+q+`.eventfold_events
					FOR EACH ROW EXECUTE FUNCTION `+q+`.boom()`)
				require.NoError(t, err)
			}
			return g
		},
	}
}

func newGroupStore(s *sqlstore.Store) *groupStore {
	g := &groupStore{Store: s, hold: make(chan struct{})}
	sqlstore.SetGroupHook(s, func(n int) {
		g.mu.Lock()
		g.groups = append(g.groups, n)
		g.mu.Unlock()
		<-g.hold
	})
	return g
}

func (g *groupStore) sizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.groups...)
}

// queue starts a blocker write and waits until the writer holds it; then
// it runs each of writes in a goroutine of its own and waits until all of
// them wait for the writer. It returns a function that releases the
// writer and waits for the writes to return.
func (g *groupStore) queue(t *testing.T, writes ...func()) (release func()) {
	t.Helper()
	before := len(g.sizes())
	blocked := make(chan error, 1)
	go func() {
		_, err := g.Append(context.WithoutCancel(t.Context()), "blocker", es.Any, es.EventData{Type: "Blocker"})
		blocked <- err
	}()
	require.Eventually(t, func() bool { return len(g.sizes()) > before }, 10*time.Second, time.Millisecond, "the writer took the blocker")
	var wg sync.WaitGroup
	for _, w := range writes {
		wg.Go(w)
	}
	require.Eventually(t, func() bool { return sqlstore.Queued(g.Store) == len(writes) }, 10*time.Second, time.Millisecond,
		"%d writes wait for the writer", len(writes))
	return func() {
		close(g.hold)
		require.NoError(t, <-blocked)
		wg.Wait()
	}
}

// TestGroupCommit checks that writes waiting for the writer are committed
// in one transaction, each with its own checks, result and error.
func TestGroupCommit(t *testing.T) {
	for name, open := range openGroupStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("concurrent appends share a transaction", func(t *testing.T) {
				g := open(t)
				go func() { g.hold <- struct{}{} }()
				_, err := g.Append(t.Context(), "taken", es.Any, es.EventData{Type: "First"})
				require.NoError(t, err)
				const n = 12
				results := make([]es.AppendResult, n)
				errs := make([]error, n)
				writes := make([]func(), n)
				for i := range writes {
					writes[i] = func() {
						stream, expected := fmt.Sprintf("s-%d", i), es.NoStream
						switch i {
						case 3: // a wrong expected revision fails alone
							stream = "taken"
						case 4, 5: // two writes to one stream: the second sees the first
							stream, expected = "shared", es.Any
						}
						results[i], errs[i] = g.Append(t.Context(), stream, expected, es.EventData{Type: "Grouped"})
					}
				}
				release := g.queue(t, writes...)
				release()
				require.Equal(t, []int{1, 1, n}, g.sizes(), "one group of every queued append")

				require.ErrorIs(t, errs[3], es.ErrWrongExpectedVersion)
				positions := map[uint64]bool{}
				for i, err := range errs {
					if i == 3 {
						continue
					}
					require.NoError(t, err, "append %d", i)
					assert.False(t, positions[results[i].Position.Commit], "append %d has a position of its own", i)
					positions[results[i].Position.Commit] = true
				}
				assert.ElementsMatch(t, []uint64{0, 1}, []uint64{results[4].Revision, results[5].Revision})
				assertLog(t, g.Store, results, errs)
			})

			t.Run("a failing append does not fail the others", func(t *testing.T) {
				g := open(t)
				g.explode(t)
				const n = 6
				errs := make([]error, n)
				results := make([]es.AppendResult, n)
				writes := make([]func(), n)
				for i := range writes {
					writes[i] = func() {
						typ := "Fine"
						if i == 2 {
							typ = "Boom" // the database refuses it
						}
						results[i], errs[i] = g.Append(t.Context(), fmt.Sprintf("s-%d", i), es.NoStream, es.EventData{Type: typ})
					}
				}
				release := g.queue(t, writes...)
				release()
				require.Equal(t, []int{1, n}, g.sizes(), "the writes were queued as one group")
				require.ErrorContains(t, errs[2], "boom")
				assertLog(t, g.Store, results, errs)
			})

			t.Run("idempotent appends in one group", func(t *testing.T) {
				g := open(t)
				ev := es.EventData{ID: uuid.New(), Type: "Once"}
				results := make([]es.AppendResult, 3)
				errs := make([]error, 3)
				writes := make([]func(), 3)
				for i := range writes {
					writes[i] = func() { results[i], errs[i] = g.Append(t.Context(), "once", es.Any, ev) }
				}
				release := g.queue(t, writes...)
				release()
				for i := range writes {
					require.NoError(t, errs[i])
					assert.Equal(t, results[0], results[i])
				}
				n := 0
				for _, err := range g.ReadStream(t.Context(), "once", es.ReadStreamOptions{}) {
					require.NoError(t, err)
					n++
				}
				assert.Equal(t, 1, n, "the event is stored once")
			})

			t.Run("a caller that leaves before its group writes nothing", func(t *testing.T) {
				g := open(t)
				ctx, cancel := context.WithCancel(t.Context())
				errs := make([]error, 3)
				results := make([]es.AppendResult, 3)
				left := make(chan struct{})
				writes := []func(){
					func() { results[0], errs[0] = g.Append(t.Context(), "kept-0", es.NoStream, es.EventData{Type: "Kept"}) },
					func() {
						defer close(left)
						results[1], errs[1] = g.Append(ctx, "left", es.NoStream, es.EventData{Type: "Left"})
					},
					func() { results[2], errs[2] = g.Append(t.Context(), "kept-2", es.NoStream, es.EventData{Type: "Kept"}) },
				}
				release := g.queue(t, writes...)
				cancel()
				<-left // it returns while the writer is still held
				require.ErrorIs(t, errs[1], context.Canceled)
				release()
				require.Equal(t, []int{1, 2}, g.sizes(), "the group holds the two writes left")
				assertLog(t, g.Store, results, errs)
				for _, err := range g.ReadStream(t.Context(), "left", es.ReadStreamOptions{}) {
					require.ErrorIs(t, err, es.ErrStreamNotFound)
				}
			})
		})
	}
}

// assertLog checks that the log holds, besides the blocker's events, the
// events of the appends that succeeded, at the positions they answered,
// and nothing of those that failed.
func assertLog(t *testing.T, s *sqlstore.Store, results []es.AppendResult, errs []error) {
	t.Helper()
	stored := map[uint64]string{}
	for ev, err := range s.ReadAll(t.Context(), es.ReadAllOptions{}) {
		require.NoError(t, err)
		stored[ev.Position.Commit] = ev.Stream
	}
	want := 0
	for i, err := range errs {
		if err != nil {
			continue
		}
		want++
		assert.Contains(t, stored, results[i].Position.Commit, "append %d is stored at the position it answered", i)
	}
	others := 0
	for _, stream := range stored {
		if stream == "blocker" || stream == "taken" {
			others++
		}
	}
	assert.Len(t, stored, want+others, "the log holds the successful appends and nothing else")
}
