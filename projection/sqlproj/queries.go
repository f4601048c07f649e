package sqlproj

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/eventfold/eventfold/es"
)

// queries are the SQL texts of one dialect and table prefix. Placeholders
// are $n: SQLite accepts them too.
type queries struct {
	schema, checkpoints, versions, deadLetters string

	createSchema string
	ddl          []string

	loadCheckpoint, saveCheckpoint     string
	insertCheckpoint, updateCheckpoint string
	loadVersion, saveVersion           string
	saveDeadLetter, listDeadLetters    string
}

func newQueries(d Dialect, prefix string) queries {
	q := queries{
		schema:      prefix + "projection_schema",
		checkpoints: prefix + "checkpoints",
		versions:    prefix + "projection_versions",
		deadLetters: prefix + "dead_letters",
	}
	bigint, boolean, bytes, ts, now := "BIGINT", "BOOLEAN", "BYTEA", "TIMESTAMPTZ", "now()"
	if d == SQLite {
		bigint, boolean, bytes, ts, now = "INTEGER", "INTEGER", "BLOB", "TEXT", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
	}
	q.createSchema = `CREATE TABLE IF NOT EXISTS ` + q.schema + ` (
		id      INTEGER PRIMARY KEY CHECK (id = 1),
		version INTEGER NOT NULL
	)`
	q.ddl = []string{
		`CREATE TABLE IF NOT EXISTS ` + q.checkpoints + ` (
			key         TEXT PRIMARY KEY,
			commit_pos  ` + bigint + ` NOT NULL,
			prepare_pos ` + bigint + ` NOT NULL,
			rebuilding  ` + boolean + ` NOT NULL,
			updated_at  ` + ts + ` NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS ` + q.versions + ` (
			name       TEXT PRIMARY KEY,
			version    ` + bigint + ` NOT NULL,
			updated_at ` + ts + ` NOT NULL
		)`,
		`CREATE TABLE IF NOT EXISTS ` + q.deadLetters + ` (
			projection   TEXT NOT NULL,
			event_id     TEXT NOT NULL,
			stream       TEXT NOT NULL,
			revision     ` + bigint + ` NOT NULL,
			commit_pos   ` + bigint + ` NOT NULL,
			prepare_pos  ` + bigint + ` NOT NULL,
			type         TEXT NOT NULL,
			content_type TEXT NOT NULL,
			created      ` + ts + ` NOT NULL,
			data         ` + bytes + `,
			metadata     ` + bytes + `,
			error        TEXT NOT NULL,
			at           ` + ts + ` NOT NULL,
			PRIMARY KEY (projection, event_id)
		)`,
	}
	q.loadCheckpoint = `SELECT commit_pos, prepare_pos, rebuilding FROM ` + q.checkpoints + ` WHERE key = $1`
	q.saveCheckpoint = `INSERT INTO ` + q.checkpoints + ` (key, commit_pos, prepare_pos, rebuilding, updated_at)
		VALUES ($1, $2, $3, $4, ` + now + `)
		ON CONFLICT (key) DO UPDATE SET commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos,
			rebuilding = excluded.rebuilding, updated_at = excluded.updated_at`
	q.insertCheckpoint = `INSERT INTO ` + q.checkpoints + ` (key, commit_pos, prepare_pos, rebuilding, updated_at)
		VALUES ($1, $2, $3, $4, ` + now + `) ON CONFLICT (key) DO NOTHING`
	q.updateCheckpoint = `UPDATE ` + q.checkpoints + ` SET commit_pos = $2, prepare_pos = $3, rebuilding = $4, updated_at = ` + now + `
		WHERE key = $1 AND commit_pos = $5 AND prepare_pos = $6 AND rebuilding = $7`
	q.loadVersion = `SELECT version FROM ` + q.versions + ` WHERE name = $1`
	q.saveVersion = `INSERT INTO ` + q.versions + ` (name, version, updated_at) VALUES ($1, $2, ` + now + `)
		ON CONFLICT (name) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`
	q.saveDeadLetter = `INSERT INTO ` + q.deadLetters + ` (projection, event_id, stream, revision, commit_pos, prepare_pos,
			type, content_type, created, data, metadata, error, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (projection, event_id) DO UPDATE SET stream = excluded.stream, revision = excluded.revision,
			commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos, type = excluded.type,
			content_type = excluded.content_type, created = excluded.created, data = excluded.data,
			metadata = excluded.metadata, error = excluded.error, at = excluded.at`
	q.listDeadLetters = `SELECT event_id, stream, revision, commit_pos, prepare_pos, type, content_type, created,
			data, metadata, error, at
		FROM ` + q.deadLetters + ` WHERE projection = $1 ORDER BY commit_pos, prepare_pos, event_id`
	return q
}

// i64 converts a position or revision for a BIGINT column.
func i64(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%w: %s %d", ErrPositionRange, what, v)
	}
	return int64(v), nil
}

// positionArgs converts p for the commit_pos and prepare_pos columns.
func positionArgs(p es.Position) (commit, prepare int64, err error) {
	if p.Commit > math.MaxInt64 || p.Prepare > math.MaxInt64 {
		return 0, 0, fmt.Errorf("%w: %v", ErrPositionRange, p)
	}
	return int64(p.Commit), int64(p.Prepare), nil
}

// timeArg converts t for a timestamp column: TIMESTAMPTZ on PostgreSQL,
// TEXT in RFC 3339 on SQLite.
func (d Dialect) timeArg(t time.Time) any {
	if d == SQLite {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return t
}

// parseTime reads a timestamp column scanned into an any.
func parseTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case time.Time:
		return v, nil
	case string:
		return time.Parse(time.RFC3339Nano, v)
	case []byte:
		return time.Parse(time.RFC3339Nano, string(v))
	case int64: // written by hand as Unix seconds
		return time.Unix(v, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("not a time: %T %s", v, strconv.Quote(fmt.Sprint(v)))
}
