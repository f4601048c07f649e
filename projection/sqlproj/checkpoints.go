package sqlproj

import (
	"context"
	"database/sql"
	"errors"

	"github.com/eventfold/eventfold/projection"
)

// Load implements [projection.Checkpoints]: it returns the checkpoint
// stored under key, or the zero Checkpoint if there is none. A row that
// cannot be read (a negative or NULL position, a value that is not a
// number or a boolean) is an error wrapping
// [projection.ErrCorruptCheckpoint] that names the key.
func (c *Checkpoints) Load(ctx context.Context, key string) (projection.Checkpoint, error) {
	return c.s.load(ctx, key)
}

// Commit implements [projection.Checkpoints]: in one transaction, it
// stores cp under key and runs apply (if not nil) on the transaction, then
// commits; an error of apply rolls both back and is returned as is.
//
// The checkpoint is written first: on SQLite, the transaction's first
// statement then takes the database's write lock, waiting for it through
// the busy timeout, so that two writers never deadlock on upgrading a read
// lock (the same effect as BEGIN IMMEDIATE, whatever the DSN's _txlock).
// Positions above 2^63-1 are refused with [ErrPositionRange].
//
// Commit is fenced: once this Checkpoints has read (Load) or written a
// key's checkpoint, it writes the key only if the row still holds what it
// last saw, and fails with [ErrConflict] otherwise, writing nothing. Two
// runners of one projection thus never both apply a batch, even when
// leases fail them (two processes on one SQLite file, a PostgreSQL lease
// whose connection was lost) or when a COMMIT reported as failed had
// succeeded. What a Commit expects is set by the first Load of the key,
// by the first Load after each [Checkpoints.Lease] of the key (as a
// runner does when it starts), and by each Commit; other Loads (a
// runner's Status) leave it alone. Committing the zero Checkpoint, which
// forgets a projection ([projection.Runner.DropVersion]), is not fenced.
func (c *Checkpoints) Commit(ctx context.Context, key string, cp projection.Checkpoint, apply func(tx *sql.Tx) error) error {
	return c.s.commit(ctx, key, cp, apply)
}

// ActiveVersion implements [projection.Versions]: the version of
// projection name that queries read, or 0 if none was recorded.
func (c *Checkpoints) ActiveVersion(ctx context.Context, name string) (int, error) {
	return c.s.activeVersion(ctx, name)
}

// SetActiveVersion implements [projection.Versions]: in one transaction,
// it records version as the active version of projection name and runs
// apply (such as [SwitchViews]), if not nil. An error of apply rolls both
// back and is returned as is.
func (c *Checkpoints) SetActiveVersion(ctx context.Context, name string, version int, apply func(tx *sql.Tx) error) error {
	return c.s.setActiveVersion(ctx, name, version, apply)
}

// SaveDeadLetter implements [projection.DeadLetters]: it records d, or
// replaces the dead letter of the same projection and event ID.
func (c *Checkpoints) SaveDeadLetter(ctx context.Context, d projection.DeadLetter) error {
	return c.s.saveDeadLetter(ctx, d)
}

// DeadLetters implements [projection.DeadLetters]: the dead letters of
// projection, in log order. PostgreSQL keeps their times to the
// microsecond.
func (c *Checkpoints) DeadLetters(ctx context.Context, projectionName string) ([]projection.DeadLetter, error) {
	return c.s.deadLetters(ctx, projectionName)
}

// sqlDB runs the store on database/sql.
type sqlDB struct{ db *sql.DB }

func (d sqlDB) queryRow(ctx context.Context, query string, args ...any) scanner {
	return d.db.QueryRowContext(ctx, query, args...)
}

func (d sqlDB) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := d.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (d sqlDB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := d.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (d sqlDB) begin(ctx, bound context.Context) (txn[*sql.Tx], error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	// database/sql rolls a transaction back when the context of its
	// BeginTx is done, even in the middle of its COMMIT: bound, not ctx.
	tx, err := conn.BeginTx(bound, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sqlTxn{conn: conn, t: tx}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

type sqlTxn struct {
	conn *sql.Conn
	t    *sql.Tx
}

func (t sqlTxn) tx() *sql.Tx { return t.t }

func (t sqlTxn) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.t.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t sqlTxn) queryRow(ctx context.Context, query string, args ...any) scanner {
	return t.t.QueryRowContext(ctx, query, args...)
}

func (t sqlTxn) commit() error {
	defer t.free()
	return t.t.Commit()
}

func (t sqlTxn) free() { t.conn.Close() }

func (t sqlTxn) rollback(context.Context) error {
	defer t.free()
	if err := t.t.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}
