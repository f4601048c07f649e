// Package sqlite opens a [sqlstore.Store] on SQLite, embedded in the
// program through the pure-Go driver modernc.org/sqlite (no cgo). The store
// itself, its options and its behaviour are those of package sqlstore; this
// package adds the SQLite dialect and its connections, and is the only one
// of eventfold's event stores that links SQLite.
//
//	store, err := sqlite.Open(ctx, "events.db", sqlstore.WithLogger(logger))
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//
// # Connections
//
// [Open] opens one file, created if needed, or a SQLite URI
// ("file:events.db?mode=ro" opens it read-only). The database is put in
// WAL mode, with foreign keys on and synchronous=FULL (a committed append
// survives a power cut). Each Store has one writer connection, whose
// transactions begin IMMEDIATE, and a pool of up to 8 read-only
// connections for reads and subscriptions; it looks for the appends of
// other processes every poll interval ([sqlstore.WithPollInterval],
// [sqlstore.DefaultSQLitePollInterval]). SQLite has no schemas:
// [sqlstore.WithSchema] is rejected, [sqlstore.WithTablePrefix] separates
// stores in one file.
package sqlite
