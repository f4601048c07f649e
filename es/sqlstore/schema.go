package sqlstore

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold/es/sqlstore/internal/backend"
)

// schemaVersion is the version of the schema this code writes. A database
// with a newer one is refused with ErrSchemaVersion.
const schemaVersion = 1

// names are the quoted, qualified names of a store's tables.
type names struct {
	schema  string // the quoted schema, or ""
	events  string
	streams string
	version string
	index   string // the index on (stream, id), unqualified
	raw     string // the unquoted qualified name of the events table
}

func newNames(schema, prefix string) names {
	q := func(name string) string { return `"` + name + `"` }
	n := names{
		events:  q(prefix + "events"),
		streams: q(prefix + "streams"),
		version: q(prefix + "schema"),
		index:   q(prefix + "events_stream_id"),
		raw:     prefix + "events",
	}
	if schema != "" {
		n.schema = q(schema)
		n.events, n.streams, n.version = n.schema+"."+n.events, n.schema+"."+n.streams, n.schema+"."+n.version
		n.raw = schema + "." + n.raw
	}
	return n
}

// queries are the statements a Store runs, the same on both databases.
type queries struct {
	names
	head            string
	loadForWrite    string
	loadStream      string
	loadAndFetch    string
	idsFrom         string
	positionAt      string
	upsertLast      string
	upsertMeta      string
	upsertTombstone string
	allForwards     string
	allBackwards    string
	allAfter        string
	streamForwards  string
	streamBackward  string
	getVersion      string
	// Scavenging: see scavenge.go.
	scavengeCandidates string
	scavengeBelow      string
	scavengeAged       string
	setVersion         string
	createVersion      string
}

// eventColumns are the columns scanEvent reads, in its order.
const eventColumns = backend.EventColumns

func newQueries(n names) queries {
	sel := "SELECT " + eventColumns + " FROM " + n.events + " WHERE "
	return queries{
		names:      n,
		head:       "SELECT coalesce(max(position), 0) FROM " + n.events,
		loadStream: "SELECT last_revision, tombstoned, metadata FROM " + n.streams + " WHERE name = $1",
		// The stream's row, and its first events from revision $2 on, at
		// most $3, in one statement (so in one snapshot): a row per event,
		// or one with no event.
		loadAndFetch: "SELECT s.last_revision, s.tombstoned, s.metadata, e.position, e.stream, e.revision, e.id," +
			" e.type, e.content_type, e.data, e.metadata, e.created FROM " + n.streams + " AS s LEFT JOIN (" +
			sel + "stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3" +
			") AS e ON e.revision <= s.last_revision WHERE s.name = $1 ORDER BY e.revision",
		// revision + 0: a plain max(revision) makes SQLite walk the
		// stream's events by revision looking for the ID, instead of
		// using the index on (stream, id).
		loadForWrite: "SELECT (SELECT coalesce(max(position), 0) FROM " + n.events + ")," +
			" (SELECT max(revision + 0) FROM " + n.events + " WHERE stream = $1 AND id = $2)," +
			" s.last_revision, s.tombstoned, s.metadata" +
			" FROM (SELECT 1 AS one) AS one LEFT JOIN " + n.streams + " AS s ON s.name = $1",
		idsFrom:    "SELECT id FROM " + n.events + " WHERE stream = $1 AND revision >= $2 AND revision < $3 ORDER BY revision",
		positionAt: "SELECT position FROM " + n.events + " WHERE stream = $1 AND revision = $2",
		upsertLast: "INSERT INTO " + n.streams + " (name, last_revision) VALUES ($1, $2)" +
			" ON CONFLICT (name) DO UPDATE SET last_revision = excluded.last_revision",
		upsertMeta: "INSERT INTO " + n.streams + " (name, metadata) VALUES ($1, $2)" +
			" ON CONFLICT (name) DO UPDATE SET metadata = excluded.metadata",
		upsertTombstone: "INSERT INTO " + n.streams + " (name, tombstoned) VALUES ($1, true)" +
			" ON CONFLICT (name) DO UPDATE SET tombstoned = true",
		allForwards:    sel + "position >= $1 AND position <= $2 ORDER BY position LIMIT $3",
		allBackwards:   sel + "position < $1 ORDER BY position DESC LIMIT $2",
		allAfter:       sel + "position > $1 ORDER BY position LIMIT $2",
		streamForwards: sel + "stream = $1 AND revision >= $2 AND revision <= $3 ORDER BY revision LIMIT $4",
		streamBackward: sel + "stream = $1 AND revision <= $2 AND revision >= $3 ORDER BY revision DESC LIMIT $4",
		getVersion:     "SELECT version FROM " + n.version + " WHERE id = 1",
		// The streams after $1 that can have events to scavenge: those
		// with metadata, tombstoned ones, metadata streams ($2 is their
		// LIKE pattern) with more than one event. At most $3.
		scavengeCandidates: "SELECT name FROM " + n.streams + " WHERE name > $1 AND (tombstoned OR metadata IS NOT NULL" +
			" OR (name LIKE $2 AND last_revision > 0)) ORDER BY name LIMIT $3",
		// Delete at most $4 events of stream $1 at revisions below $2 and
		// positions below $3.
		scavengeBelow: "DELETE FROM " + n.events + " WHERE position IN (SELECT position FROM " + n.events +
			" WHERE stream = $1 AND revision < $2 AND position < $3 ORDER BY revision LIMIT $4) RETURNING position",
		// Delete at most $5 events of stream $1 at revisions below $2,
		// created at or before $3, at positions below $4.
		scavengeAged: "DELETE FROM " + n.events + " WHERE position IN (SELECT position FROM " + n.events +
			" WHERE stream = $1 AND revision < $2 AND created <= $3 AND position < $4 ORDER BY revision LIMIT $5) RETURNING position",
		setVersion: "INSERT INTO " + n.version + " (id, version) VALUES (1, $1)" +
			" ON CONFLICT (id) DO UPDATE SET version = excluded.version",
		createVersion: "CREATE TABLE IF NOT EXISTS " + n.version +
			" (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
	}
}

// migrate checks the schema version of the database and creates the schema
// if there is none. A database whose schema is current is only read, so
// that a read-only database opens; one with a newer schema is refused
// before anything is written.
func (s *Store) migrate(ctx context.Context) error {
	v, ok, err := s.readVersion(ctx, s.reader(), true)
	if err != nil {
		return s.opError(ctx, "read the schema version", err)
	}
	if ok {
		return checkVersion(v)
	}
	if err := s.call(ctx, s.createSchema); err != nil {
		return s.opError(ctx, "create the schema", err)
	}
	return nil
}

// createSchema creates the schema, in one transaction, unless another
// process did meanwhile.
func (s *Store) createSchema(ctx context.Context) error {
	return s.db.Write(ctx, func(tx querier) error {
		if s.q.schema != "" {
			if err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s.q.schema); err != nil {
				return err
			}
		}
		if err := tx.Exec(ctx, s.q.createVersion); err != nil {
			return err
		}
		// Another process may have created the schema meanwhile.
		v, ok, err := s.readVersion(ctx, tx, false)
		switch {
		case err != nil:
			return err
		case ok:
			return checkVersion(v)
		}
		for _, stmt := range s.db.DDL() {
			if err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return tx.Exec(ctx, s.q.setVersion, int64(schemaVersion))
	})
}

// readVersion returns the schema version recorded in the database, and
// false if there is none. With probe, it first checks that the version
// table exists.
func (s *Store) readVersion(ctx context.Context, q queryer, probe bool) (int64, bool, error) {
	if probe {
		var exists bool
		err := s.call(ctx, func(ctx context.Context) (err error) {
			exists, err = s.db.TableExists(ctx, s.q.version)
			return err
		})
		if err != nil || !exists {
			return 0, false, err
		}
	}
	var v int64
	ok, err := queryRow(ctx, q, s.q.getVersion, nil, &v)
	return v, ok, err
}

func checkVersion(v int64) error {
	if v > schemaVersion {
		return fmt.Errorf("%w: the database has schema version %d and this version of eventfold knows versions up to %d: upgrade eventfold",
			ErrSchemaVersion, v, schemaVersion)
	}
	if v < 1 {
		return fmt.Errorf("%w: the database has schema version %d", ErrSchemaVersion, v)
	}
	return nil
}
