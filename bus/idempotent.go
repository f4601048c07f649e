package bus

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ProcessedStore records which events each handler has processed, for
// [Idempotent]. Implementations must be safe for concurrent use.
type ProcessedStore interface {
	// Processed reports whether handler has processed event id.
	Processed(ctx context.Context, handler string, id uuid.UUID) (bool, error)
	// MarkProcessed records that handler processed event id. Marking an
	// event twice is not an error.
	MarkProcessed(ctx context.Context, handler string, id uuid.UUID) error
}

// Idempotent wraps an event handler so that an event that handler (a
// stable name, such as its group's) has processed before, in this process
// or an earlier one, is acknowledged without calling fn again. The event
// is marked processed after fn returns nil; a crash in between calls fn
// again on redelivery, so where fn writes to SQL, mark the event in fn's
// own transaction instead ([SQLProcessed.MarkProcessedTx]) for an effect
// exactly once. Outside an event handler (no [EventFromContext]), fn is
// called as is.
func Idempotent[E any](store ProcessedStore, handler string, fn func(ctx context.Context, e E) error) func(ctx context.Context, e E) error {
	return func(ctx context.Context, e E) error {
		rec, ok := EventFromContext(ctx)
		if !ok {
			return fn(ctx, e)
		}
		done, err := store.Processed(ctx, handler, rec.ID)
		if err != nil {
			return fmt.Errorf("bus: idempotent %s: %w", handler, err)
		}
		if done {
			return nil
		}
		if err := fn(ctx, e); err != nil {
			return err
		}
		if err := store.MarkProcessed(ctx, handler, rec.ID); err != nil {
			return fmt.Errorf("bus: idempotent %s: %w", handler, err)
		}
		return nil
	}
}

// MemoryProcessed is a [ProcessedStore] in memory, for tests and handlers
// whose effects are in memory too. The zero value is ready to use.
type MemoryProcessed struct {
	mu   sync.Mutex
	done map[string]map[uuid.UUID]bool
}

var (
	_ ProcessedStore = (*MemoryProcessed)(nil)
	_ ProcessedStore = (*SQLProcessed)(nil)
)

// Processed implements [ProcessedStore].
func (m *MemoryProcessed) Processed(_ context.Context, handler string, id uuid.UUID) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done[handler][id], nil
}

// MarkProcessed implements [ProcessedStore].
func (m *MemoryProcessed) MarkProcessed(_ context.Context, handler string, id uuid.UUID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		m.done = make(map[string]map[uuid.UUID]bool)
	}
	if m.done[handler] == nil {
		m.done[handler] = make(map[uuid.UUID]bool)
	}
	m.done[handler][id] = true
	return nil
}

// SQLProcessed is a [ProcessedStore] in a SQL table (handler, event_id)
// with a primary key on both, on PostgreSQL or SQLite.
type SQLProcessed struct {
	db                   *sql.DB
	selectSQL, insertSQL string
}

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// NewSQLProcessed returns a store of processed events in table, which it
// creates if it does not exist.
func NewSQLProcessed(ctx context.Context, db *sql.DB, table string) (*SQLProcessed, error) {
	if db == nil || !tableName.MatchString(table) {
		return nil, fmt.Errorf("%w: processed events table %q", ErrInvalidOption, table)
	}
	create := `CREATE TABLE IF NOT EXISTS ` + table + ` (
	handler  TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (handler, event_id))`
	if _, err := db.ExecContext(ctx, create); err != nil {
		return nil, fmt.Errorf("bus: create %s: %w", table, err)
	}
	return &SQLProcessed{db: db,
		selectSQL: `SELECT 1 FROM ` + table + ` WHERE handler = $1 AND event_id = $2`,
		insertSQL: `INSERT INTO ` + table + ` (handler, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
	}, nil
}

// processedCallTimeout bounds each call of a SQLProcessed into its
// database, so that a database that stalls fails the handler in time
// rather than holding it until the handler's timeout.
const processedCallTimeout = 5 * time.Second

// Processed implements [ProcessedStore]. Each call is bounded (5s).
func (s *SQLProcessed) Processed(ctx context.Context, handler string, id uuid.UUID) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, processedCallTimeout)
	defer cancel()
	var one int
	switch err := s.db.QueryRowContext(ctx, s.selectSQL, handler, id.String()).Scan(&one); err {
	case nil:
		return true, nil
	case sql.ErrNoRows:
		return false, nil
	default:
		return false, fmt.Errorf("bus: processed: %w", err)
	}
}

// MarkProcessed implements [ProcessedStore]. Each call is bounded (5s).
func (s *SQLProcessed) MarkProcessed(ctx context.Context, handler string, id uuid.UUID) error {
	ctx, cancel := context.WithTimeout(ctx, processedCallTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, s.insertSQL, handler, id.String()); err != nil {
		return fmt.Errorf("bus: mark processed: %w", err)
	}
	return nil
}

// MarkProcessedTx marks the event of ctx ([EventFromContext]) processed by
// handler within tx, the transaction in which the handler writes its
// effects, and reports whether this is the first time. When it reports
// false, the handler rolls tx back and returns nil: the event's effects are
// then applied exactly once. Outside an event handler it reports true.
func (s *SQLProcessed) MarkProcessedTx(ctx context.Context, tx *sql.Tx, handler string) (bool, error) {
	rec, ok := EventFromContext(ctx)
	if !ok {
		return true, nil
	}
	res, err := tx.ExecContext(ctx, s.insertSQL, handler, rec.ID.String())
	if err != nil {
		return false, fmt.Errorf("bus: mark processed: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("bus: mark processed: %w", err)
	}
	return n == 1, nil
}
