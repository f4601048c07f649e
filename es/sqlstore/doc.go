// Package sqlstore is an [es.Store] on SQL: SQLite, embedded in the
// program through a pure-Go driver, and PostgreSQL through pgx.
package sqlstore
