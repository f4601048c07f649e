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
	schema, checkpoints, versions, deadLetters, leases string

	createSchema string
	ddl          []string

	loadCheckpoint, saveCheckpoint     string
	insertCheckpoint, updateCheckpoint string
	loadVersion, saveVersion           string
	saveDeadLetter, listDeadLetters    string

	takeLease, renewLeases, releaseLease, fenceLease, leaseHolder string
	leaseRow, takeOrphan                                          string
	members                                                       string
}

func newQueries(d Dialect, prefix string) queries {
	q := queries{
		schema:      prefix + "projection_schema",
		checkpoints: prefix + "checkpoints",
		versions:    prefix + "projection_versions",
		deadLetters: prefix + "dead_letters",
		leases:      prefix + "leases",
	}
	bigint, boolean, bytes, ts, now := "BIGINT", "BOOLEAN", "BYTEA", "TIMESTAMPTZ", "now()"
	// nowMS is the database's clock in milliseconds since 1970: leases
	// expire by the clock of the database, which all their holders share.
	nowMS := "(extract(epoch from clock_timestamp()) * 1000)::bigint"
	if d == SQLite {
		bigint, boolean, bytes, ts, now = "INTEGER", "INTEGER", "BLOB", "TEXT", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
		nowMS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
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
			updated_at  ` + ts + ` NOT NULL,
			partitions  ` + bigint + ` NOT NULL DEFAULT 0
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
		// A lease is held by holder until expires (the database's clock, in
		// milliseconds), under a fencing token that grows by one at each
		// takeover.
		// host, pid and instance (a Checkpoints value) identify the
		// holding process, so that on SQLite a process can take over at
		// once the lease of one that is gone from its host.
		`CREATE TABLE IF NOT EXISTS ` + q.leases + ` (
			key      TEXT PRIMARY KEY,
			holder   TEXT NOT NULL,
			host     TEXT NOT NULL,
			pid      ` + bigint + ` NOT NULL,
			instance TEXT NOT NULL,
			token    ` + bigint + ` NOT NULL,
			expires  ` + bigint + ` NOT NULL
		)`,
	}
	q.loadCheckpoint = `SELECT commit_pos, prepare_pos, rebuilding, partitions FROM ` + q.checkpoints + ` WHERE key = $1`
	q.saveCheckpoint = `INSERT INTO ` + q.checkpoints + ` (key, commit_pos, prepare_pos, rebuilding, partitions, updated_at)
		VALUES ($1, $2, $3, $4, $5, ` + now + `)
		ON CONFLICT (key) DO UPDATE SET commit_pos = excluded.commit_pos, prepare_pos = excluded.prepare_pos,
			rebuilding = excluded.rebuilding, partitions = excluded.partitions, updated_at = excluded.updated_at`
	q.insertCheckpoint = `INSERT INTO ` + q.checkpoints + ` (key, commit_pos, prepare_pos, rebuilding, partitions, updated_at)
		VALUES ($1, $2, $3, $4, $5, ` + now + `) ON CONFLICT (key) DO NOTHING`
	q.updateCheckpoint = `UPDATE ` + q.checkpoints + ` SET commit_pos = $2, prepare_pos = $3, rebuilding = $4, partitions = $5,
			updated_at = ` + now + `
		WHERE key = $1 AND commit_pos = $6 AND prepare_pos = $7 AND rebuilding = $8 AND partitions = $9`
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
	q.takeLease = `INSERT INTO ` + q.leases + ` (key, holder, host, pid, instance, token, expires)
		VALUES ($1, $2, $4, $5, $6, 1, ` + nowMS + ` + $3)
		ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, host = excluded.host, pid = excluded.pid,
			instance = excluded.instance, token = ` + q.leases + `.token + 1, expires = excluded.expires
		WHERE ` + q.leases + `.expires <= ` + nowMS + `
		RETURNING token`
	q.leaseRow = `SELECT host, pid, instance, token FROM ` + q.leases + ` WHERE key = $1`
	q.takeOrphan = `UPDATE ` + q.leases + ` SET holder = $2, host = $4, pid = $5, instance = $6, token = token + 1,
			expires = ` + nowMS + ` + $3
		WHERE key = $1 AND token = $7
		RETURNING token`
	// renewLeases renews the leases whose (key, token) pairs are in the
	// JSON array $2, and returns the keys it renewed.
	q.renewLeases = `UPDATE ` + q.leases + ` SET expires = ` + nowMS + ` + $1
		WHERE (key, token) IN (SELECT e->>0, (e->>1)::bigint FROM jsonb_array_elements($2::jsonb) AS e)
		RETURNING key`
	if d == SQLite {
		q.renewLeases = `UPDATE ` + q.leases + ` SET expires = ` + nowMS + ` + $1
			WHERE (key, token) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($2))
			RETURNING key`
	}
	q.releaseLease = `UPDATE ` + q.leases + ` SET expires = 0 WHERE key = $1 AND token = $2`
	// fenceLease changes nothing but locks the lease's row (PostgreSQL) or
	// the database (SQLite) until the commit ends.
	q.fenceLease = `UPDATE ` + q.leases + ` SET token = token WHERE key = $1 AND token = $2 AND expires > ` + nowMS
	if d == Postgres {
		// The same round trip sets the transaction's
		// idle_in_transaction_session_timeout (see store.fence).
		q.fenceLease += ` AND set_config('idle_in_transaction_session_timeout', $3, true) IS NOT NULL`
	}
	q.leaseHolder = `SELECT holder FROM ` + q.leases + ` WHERE key = $1 AND expires > ` + nowMS
	// members lists the unexpired leases whose key starts with $1, of $2
	// characters (substr counts characters on both databases; LIKE would
	// need the prefix escaped, and a range would depend on the collation).
	q.members = `SELECT key, host, pid, instance FROM ` + q.leases + `
		WHERE substr(key, 1, $2) = $1 AND expires > ` + nowMS
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
