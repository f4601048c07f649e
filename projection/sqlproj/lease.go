package sqlproj

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
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
	if c.dialect == SQLite {
		release, err := c.local.Lease(ctx, key)
		if err == nil {
			c.rearm(key)
		}
		return release, err
	}
	id := lockID(c.lockNS, key)
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlproj: lease %q: %w", key, withCtx(ctx, err))
	}
	var timer *time.Timer
	for {
		var ok bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", id).Scan(&ok); err != nil {
			discard(conn)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("sqlproj: lease %q: %w", key, err)
		}
		if ok {
			break
		}
		if timer == nil {
			timer = time.NewTimer(c.cfg.leasePoll)
			defer timer.Stop()
		} else {
			timer.Reset(c.cfg.leasePoll)
		}
		select {
		case <-ctx.Done():
			conn.Close() // the lock was not taken: the connection is clean
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
	c.rearm(key)
	c.cfg.logger.DebugContext(ctx, "sqlproj: lease taken", "key", key, "lock", id)
	// Release outlives ctx, which is usually done by then; it keeps its
	// values, for logs and traces.
	base := context.WithoutCancel(ctx)
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(base, releaseTimeout)
			defer cancel()
			var unlocked bool
			err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", id).Scan(&unlocked)
			if err != nil || !unlocked {
				c.cfg.logger.WarnContext(ctx, "sqlproj: unlock of a lease failed; closing its connection", "key", key, "error", err)
				discard(conn)
				return
			}
			conn.Close()
			c.cfg.logger.DebugContext(ctx, "sqlproj: lease released", "key", key)
		})
	}, nil
}

// discard closes the connection under conn instead of returning it to the
// pool, so that its session ends and its session locks are freed.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close() // sql.ErrConnDone: Raw closed it
}
