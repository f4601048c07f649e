package sqlbus

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/bus"
)

// ErrInvalidOption means NewProcessed was given an invalid argument.
var ErrInvalidOption = errors.New("sqlbus: invalid option")

// Processed is a [bus.ProcessedStore] in a SQL table (handler, event_id),
// with a primary key on both, on PostgreSQL or SQLite. The handler column
// holds the event handler group's name. It is safe for concurrent use.
type Processed struct {
	db                   *sql.DB
	selectSQL, insertSQL string
}

var _ bus.ProcessedStore = (*Processed)(nil)

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// NewProcessed returns a store of processed events in table, which it
// creates if it does not exist. db stays the caller's to close. table
// holds 1 to 63 letters, digits and '_', not starting with a digit;
// anything else is an error wrapping [ErrInvalidOption].
func NewProcessed(ctx context.Context, db *sql.DB, table string) (*Processed, error) {
	if db == nil || !tableName.MatchString(table) {
		return nil, fmt.Errorf("%w: processed events table %q", ErrInvalidOption, table)
	}
	create := `CREATE TABLE IF NOT EXISTS ` + table + ` (
	handler  TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (handler, event_id))`
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// Replicas starting at once on a fresh database create the table
	// together: on PostgreSQL, CREATE TABLE IF NOT EXISTS then fails in
	// all but one of them (a unique violation in its catalog) once the
	// winner has committed, and a second try finds the table.
	var err error
	for range createAttempts {
		if _, err = db.ExecContext(ctx, create); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sqlbus: create %s: %w", table, err)
	}
	return &Processed{db: db,
		selectSQL: `SELECT 1 FROM ` + table + ` WHERE handler = $1 AND event_id = $2`,
		insertSQL: `INSERT INTO ` + table + ` (handler, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
	}, nil
}

// createAttempts is how many times NewProcessed tries to create its table.
const createAttempts = 3

// callTimeout bounds each call of a Processed into its database.
const callTimeout = 5 * time.Second

// Processed implements [bus.ProcessedStore]. Each call is bounded (5s).
func (s *Processed) Processed(ctx context.Context, group string, id uuid.UUID) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var one int
	switch err := s.db.QueryRowContext(ctx, s.selectSQL, group, id.String()).Scan(&one); {
	case err == nil:
		return true, nil
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	default:
		return false, fmt.Errorf("sqlbus: processed: %w", err)
	}
}

// MarkProcessed implements [bus.ProcessedStore]. Each call is bounded (5s).
func (s *Processed) MarkProcessed(ctx context.Context, group string, id uuid.UUID) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, s.insertSQL, group, id.String()); err != nil {
		return fmt.Errorf("sqlbus: mark processed: %w", err)
	}
	return nil
}

// MarkProcessedTx marks the event of an event handler's context
// (bus.EventFromContext) processed by its group (bus.GroupFromContext)
// within tx, the transaction in which the handler writes its effects, and
// reports whether this is the first time. When it reports false, the
// handler rolls tx back and returns nil: the event's effects are then
// applied exactly once. Outside an event handler it reports true. The call
// is bounded (5s).
func (s *Processed) MarkProcessedTx(ctx context.Context, tx *sql.Tx) (bool, error) {
	rec, ok := bus.EventFromContext(ctx)
	group, _ := bus.GroupFromContext(ctx)
	if !ok {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := tx.ExecContext(ctx, s.insertSQL, group, rec.ID.String())
	if err != nil {
		return false, fmt.Errorf("sqlbus: mark processed: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlbus: mark processed: %w", err)
	}
	return n == 1, nil
}
