package sqlproj

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
)

// Load implements [projection.Checkpoints]: it returns the checkpoint
// stored under key, or the zero Checkpoint if there is none. A row that
// cannot be read (a negative or NULL position, a value that is not a
// number or a boolean) is an error wrapping
// [projection.ErrCorruptCheckpoint] that names the key.
func (c *Checkpoints) Load(ctx context.Context, key string) (projection.Checkpoint, error) {
	c.mu.Lock()
	gen := c.seen[key].gen
	c.mu.Unlock()
	cp, exists, err := c.load(ctx, key)
	if err == nil {
		c.mu.Lock()
		// Expect what was read if nothing is expected yet, or after a
		// lease, unless a Commit of key ended meanwhile.
		if s := c.seen[key]; s.gen == gen && (!s.known || s.rearm) {
			c.seen[key] = seen{cp: cp, exists: exists, gen: gen + 1, known: true}
		}
		c.mu.Unlock()
	}
	return cp, err
}

// rearm makes the next Load of key set the state its Commits expect.
func (c *Checkpoints) rearm(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.seen[key]
	s.rearm, s.gen = true, s.gen+1
	c.seen[key] = s
}

func (c *Checkpoints) load(ctx context.Context, key string) (cp projection.Checkpoint, exists bool, err error) {
	// Scanned as they are, so that a value of the wrong type is reported
	// as a corrupt checkpoint rather than as a failure of the database.
	var commit, prepare, rebuilding any
	err = c.db.QueryRowContext(ctx, c.q.loadCheckpoint, key).Scan(&commit, &prepare, &rebuilding)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return projection.Checkpoint{}, false, nil
	case err != nil:
		return projection.Checkpoint{}, false, fmt.Errorf("sqlproj: load checkpoint %q: %w", key, withCtx(ctx, err))
	}
	c64, ok1 := commit.(int64)
	p64, ok2 := prepare.(int64)
	var ok3 bool
	switch r := rebuilding.(type) {
	case bool:
		cp.Rebuilding, ok3 = r, true
	case int64: // SQLite
		cp.Rebuilding, ok3 = r == 1, r == 0 || r == 1
	}
	if !ok1 || !ok2 || !ok3 || c64 < 0 || p64 < 0 {
		return projection.Checkpoint{}, false, fmt.Errorf("%w: %q in %s: position (%s, %s), rebuilding %s",
			projection.ErrCorruptCheckpoint, key, c.q.checkpoints, show(commit), show(prepare), show(rebuilding))
	}
	cp.Position = es.Position{Commit: uint64(c64), Prepare: uint64(p64)}
	return cp, true, nil
}

// show formats a column's value for an error message.
func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return strconv.Quote(v)
	case []byte:
		return strconv.Quote(string(v))
	}
	return fmt.Sprint(v)
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
	commit, prepare, err := positionArgs(cp.Position)
	if err != nil {
		return fmt.Errorf("sqlproj: checkpoint %q: %w", key, err)
	}
	c.mu.Lock()
	last := c.seen[key]
	c.mu.Unlock()
	known := last.known && cp != (projection.Checkpoint{})
	err = c.write(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		switch {
		case !known:
			res, err = tx.ExecContext(ctx, c.q.saveCheckpoint, key, commit, prepare, cp.Rebuilding)
		case !last.exists:
			res, err = tx.ExecContext(ctx, c.q.insertCheckpoint, key, commit, prepare, cp.Rebuilding)
		default:
			res, err = tx.ExecContext(ctx, c.q.updateCheckpoint, key, commit, prepare, cp.Rebuilding,
				int64(last.cp.Position.Commit), int64(last.cp.Position.Prepare), last.cp.Rebuilding)
		}
		if err != nil {
			return fmt.Errorf("sqlproj: save checkpoint %q: %w", key, err)
		}
		if known {
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("sqlproj: save checkpoint %q: %w", key, err)
			} else if n != 1 {
				return fmt.Errorf("%w: %q was at %v when last seen", ErrConflict, key, describe(last))
			}
		}
		if apply != nil {
			return apply(tx)
		}
		return nil
	})
	if err == nil {
		c.mu.Lock()
		c.seen[key] = seen{cp: cp, exists: true, gen: c.seen[key].gen + 1, known: true}
		c.mu.Unlock()
	}
	return err
}

func describe(s seen) string {
	if !s.exists {
		return "none"
	}
	if s.cp.Rebuilding {
		return s.cp.Position.String() + " (rebuilding)"
	}
	return s.cp.Position.String()
}

// ActiveVersion implements [projection.Versions]: the version of
// projection name that queries read, or 0 if none was recorded.
func (c *Checkpoints) ActiveVersion(ctx context.Context, name string) (int, error) {
	var v int64
	err := c.db.QueryRowContext(ctx, c.q.loadVersion, name).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("sqlproj: active version of %q: %w", name, withCtx(ctx, err))
	}
	return int(v), nil
}

// SetActiveVersion implements [projection.Versions]: in one transaction,
// it records version as the active version of projection name and runs
// apply (such as [SwitchViews]), if not nil. An error of apply rolls both
// back and is returned as is.
func (c *Checkpoints) SetActiveVersion(ctx context.Context, name string, version int, apply func(tx *sql.Tx) error) error {
	if version < 0 {
		return fmt.Errorf("sqlproj: active version of %q: negative version %d", name, version)
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, c.q.saveVersion, name, int64(version)); err != nil {
			return fmt.Errorf("sqlproj: set active version of %q: %w", name, err)
		}
		if apply != nil {
			return apply(tx)
		}
		return nil
	})
}

// SaveDeadLetter implements [projection.DeadLetters]: it records d, or
// replaces the dead letter of the same projection and event ID.
func (c *Checkpoints) SaveDeadLetter(ctx context.Context, d projection.DeadLetter) error {
	ev := d.Event
	commit, prepare, err := positionArgs(ev.Position)
	if err != nil {
		return fmt.Errorf("sqlproj: dead letter %s: %w", ev.ID, err)
	}
	revision, err := i64("revision", ev.Revision)
	if err != nil {
		return fmt.Errorf("sqlproj: dead letter %s: %w", ev.ID, err)
	}
	err = c.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, c.q.saveDeadLetter, d.Projection, ev.ID.String(), ev.Stream, revision, commit, prepare,
			ev.Type, ev.ContentType, c.dialect.timeArg(ev.Created), ev.Data, ev.Metadata, d.Error, c.dialect.timeArg(d.At))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlproj: save dead letter %s of %q: %w", ev.ID, d.Projection, err)
	}
	return nil
}

// DeadLetters implements [projection.DeadLetters]: the dead letters of
// projection, in log order. PostgreSQL keeps their times to the
// microsecond.
func (c *Checkpoints) DeadLetters(ctx context.Context, projectionName string) ([]projection.DeadLetter, error) {
	rows, err := c.db.QueryContext(ctx, c.q.listDeadLetters, projectionName)
	if err != nil {
		return nil, fmt.Errorf("sqlproj: dead letters of %q: %w", projectionName, withCtx(ctx, err))
	}
	defer rows.Close()
	var out []projection.DeadLetter
	for rows.Next() {
		var (
			id                        string
			revision, commit, prepare int64
			created, at               any
			d                         = projection.DeadLetter{Projection: projectionName}
			ev                        = &d.Event
		)
		if err := rows.Scan(&id, &ev.Stream, &revision, &commit, &prepare, &ev.Type, &ev.ContentType, &created,
			&ev.Data, &ev.Metadata, &d.Error, &at); err != nil {
			return nil, fmt.Errorf("sqlproj: dead letters of %q: %w", projectionName, err)
		}
		var errs []error
		ev.ID, err = uuid.Parse(id)
		errs = append(errs, err)
		ev.Created, err = parseTime(created)
		errs = append(errs, err)
		d.At, err = parseTime(at)
		errs = append(errs, err)
		if revision < 0 || commit < 0 || prepare < 0 {
			errs = append(errs, fmt.Errorf("negative revision or position"))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("sqlproj: dead letter %s of %q: %w", id, projectionName, err)
		}
		ev.Revision = uint64(revision)
		ev.Position = es.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlproj: dead letters of %q: %w", projectionName, err)
	}
	return out, nil
}
