package sqlproj

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold/projection"
)

// PgxCheckpoints is [Checkpoints] on PostgreSQL through a pgx pool: the
// same tables, queries, fencing, leases, versions and dead letters, but
// handlers get a native [pgx.Tx], on which they can COPY rows
// ([pgx.Tx.CopyFrom]) or send a [pgx.Batch] of statements in one round
// trip. Checkpoints and PgxCheckpoints with the same table prefix in one
// database read and write the same rows, so tools built on either (the
// replay tool, a status page) see the projections of both, and their
// leases exclude each other. It is safe for concurrent use.
type PgxCheckpoints struct {
	s *store[pgx.Tx]
}

var (
	_ projection.Checkpoints[pgx.Tx] = (*PgxCheckpoints)(nil)
	_ projection.Leaser              = (*PgxCheckpoints)(nil)
	_ projection.LeaseHolders        = (*PgxCheckpoints)(nil)
	_ projection.Versions[pgx.Tx]    = (*PgxCheckpoints)(nil)
	_ projection.DeadLetters         = (*PgxCheckpoints)(nil)
)

// NewPgx returns checkpoints kept in the PostgreSQL database of pool, as
// [New] does for a *sql.DB: it creates the tables if they do not exist
// and fails with [ErrSchemaVersion] if they were written by a newer
// version of this package. The pool stays the caller's: NewPgx does not
// close it. A lease ([PgxCheckpoints.Lease]) holds a connection of the
// pool for its lifetime: size the pool (pgxpool's pool_max_conns) for one
// connection per running projection on top of those for the batches.
func NewPgx(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*PgxCheckpoints, error) {
	cfg, err := newConfig(Postgres, opts)
	if err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, fmt.Errorf("%w: nil *pgxpool.Pool", ErrInvalidOption)
	}
	s, err := newStore[pgx.Tx](ctx, pgxDB{pool}, Postgres, cfg)
	if err != nil {
		return nil, err
	}
	return &PgxCheckpoints{s: s}, nil
}

// Load implements [projection.Checkpoints] as [Checkpoints.Load] does.
func (c *PgxCheckpoints) Load(ctx context.Context, key string) (projection.Checkpoint, error) {
	return c.s.load(ctx, key)
}

// Commit implements [projection.Checkpoints]: in one transaction, it
// stores cp under key and runs apply (if not nil) on the transaction, then
// commits; an error of apply rolls both back and is returned as is.
// apply must neither commit nor roll back tx. Commit is fenced as
// [Checkpoints.Commit] is, and fails with [ErrConflict] in the same cases.
func (c *PgxCheckpoints) Commit(ctx context.Context, key string, cp projection.Checkpoint, apply func(tx pgx.Tx) error) error {
	return c.s.commit(ctx, key, cp, apply)
}

// Lease implements [projection.Leaser] as [Checkpoints.Lease] does, in
// the same table: a Checkpoints and a PgxCheckpoints with the same table
// prefix share their leases.
func (c *PgxCheckpoints) Lease(ctx context.Context, key string) (context.Context, func(), error) {
	return c.s.lease(ctx, key)
}

// LeaseHolder implements [projection.LeaseHolders] as
// [Checkpoints.LeaseHolder] does.
func (c *PgxCheckpoints) LeaseHolder(ctx context.Context, key string) (string, error) {
	return c.s.leaseHolder(ctx, key)
}

// ActiveVersion implements [projection.Versions]: the version of
// projection name that queries read, or 0 if none was recorded.
func (c *PgxCheckpoints) ActiveVersion(ctx context.Context, name string) (int, error) {
	return c.s.activeVersion(ctx, name)
}

// SetActiveVersion implements [projection.Versions]: in one transaction,
// it records version as the active version of projection name and runs
// apply (such as [PgxSwitchViews]), if not nil. An error of apply rolls
// both back and is returned as is.
func (c *PgxCheckpoints) SetActiveVersion(ctx context.Context, name string, version int, apply func(tx pgx.Tx) error) error {
	return c.s.setActiveVersion(ctx, name, version, apply)
}

// SaveDeadLetter implements [projection.DeadLetters]: it records d, or
// replaces the dead letter of the same projection and event ID.
func (c *PgxCheckpoints) SaveDeadLetter(ctx context.Context, d projection.DeadLetter) error {
	return c.s.saveDeadLetter(ctx, d)
}

// DeadLetters implements [projection.DeadLetters]: the dead letters of
// projection, in log order, their times to the microsecond.
func (c *PgxCheckpoints) DeadLetters(ctx context.Context, projectionName string) ([]projection.DeadLetter, error) {
	return c.s.deadLetters(ctx, projectionName)
}

// PgxTxFunc is the shape of [projection.Projection]'s Setup, Reset,
// Activate and Drop for read models on [PgxCheckpoints].
type PgxTxFunc = func(ctx context.Context, tx pgx.Tx, version int) error

// PgxSwitchViews is [SwitchViews] for [PgxCheckpoints].
func PgxSwitchViews(tables ...string) PgxTxFunc { return switchViews(pgxExec, tables) }

// PgxDropTables is [DropTables] for [PgxCheckpoints].
func PgxDropTables(tables ...string) PgxTxFunc {
	return eachTable(pgxExec, "drop", "DROP TABLE IF EXISTS ", tables)
}

// PgxResetTables is [ResetTables] for [PgxCheckpoints].
func PgxResetTables(tables ...string) PgxTxFunc {
	return eachTable(pgxExec, "reset", "DELETE FROM ", tables)
}

func pgxExec(ctx context.Context, tx pgx.Tx, query string) error {
	_, err := tx.Exec(ctx, query)
	return err
}

// pgxDB runs the store on a pgx pool.
type pgxDB struct{ pool *pgxpool.Pool }

func (d pgxDB) queryRow(ctx context.Context, query string, args ...any) scanner {
	return d.pool.QueryRow(ctx, query, args...)
}

func (d pgxDB) query(ctx context.Context, query string, args ...any) (rows, error) {
	return d.pool.Query(ctx, query, args...)
}

func (d pgxDB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := d.pool.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (d pgxDB) begin(ctx, bound context.Context) (txn[pgx.Tx], error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return pgxTxn{tx, bound}, nil
}

type pgxTxn struct {
	t     pgx.Tx
	bound context.Context // bounds the COMMIT
}

func (t pgxTxn) tx() pgx.Tx { return t.t }

func (t pgxTxn) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.t.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (t pgxTxn) queryRow(ctx context.Context, query string, args ...any) scanner {
	return t.t.QueryRow(ctx, query, args...)
}

func (t pgxTxn) commit() error { return t.t.Commit(t.bound) }

func (t pgxTxn) rollback(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := t.t.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	return nil
}
