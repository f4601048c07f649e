package sqlproj

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"time"
)

// releaseTimeout bounds how long releasing a PostgreSQL lease waits for
// the unlock; past it, the lease's connection is closed, which frees the
// lock as well.
const releaseTimeout = 5 * time.Second

// Lease implements [projection.Leaser]: it blocks until this process holds
// the lease on key, or ctx is done, and returns the function that gives it
// back.
//
// On PostgreSQL the lease is a session-level advisory lock
// (pg_try_advisory_lock on a 64-bit FNV-1a hash of the schema, the table
// prefix and key), held on a connection taken from the pool for the
// lease's lifetime: if the process dies, the connection closes and the
// lock goes with it. While another session holds it, Lease tries again
// every lease poll interval ([WithLeasePoll]) until ctx is done. Release
// unlocks and returns the connection to the pool; if the unlock fails, it
// closes the connection instead.
//
// On SQLite the lease is held in this process only, by this Checkpoints:
// one SQLite file is served by one process (SQLite has no lock that dies
// with its holder and can be waited for without blocking writers). Use one
// Checkpoints per database in a process.
func (c *Checkpoints) Lease(ctx context.Context, key string) (func(), error) {
	return c.s.lease(ctx, key)
}

type sqlSession struct{ conn *sql.Conn }

func (s sqlSession) queryRow(ctx context.Context, query string, args ...any) scanner {
	return s.conn.QueryRowContext(ctx, query, args...)
}

func (s sqlSession) begin(ctx context.Context) (txn[*sql.Tx], error) {
	// database/sql rolls a transaction back when the context of its
	// BeginTx is done, even in the middle of its COMMIT.
	tx, err := s.conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, err
	}
	return sqlTxn{conn: s.conn, t: tx, keep: true}, nil
}

func (s sqlSession) alive(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	return s.conn.PingContext(ctx) == nil
}

func (s sqlSession) release() { s.conn.Close() }

func (s sqlSession) discard(context.Context) {
	_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = s.conn.Close() // sql.ErrConnDone: Raw closed it
}
