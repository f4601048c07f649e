package sqlproj

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"

	"github.com/eventfold/eventfold/projection"
)

// validTable matches the table names the helpers accept: SQL identifiers,
// optionally qualified by a schema ("reports.order_summaries").
var validTable = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$`)

// TxFunc is the shape of [projection.Projection]'s Setup, Reset, Activate
// and Drop for read models in SQL.
type TxFunc = func(ctx context.Context, tx *sql.Tx, version int) error

// SwitchViews returns a [projection.Projection] Activate function for
// read models that keep version n of each table in "<table>_v<n>"
// ([projection.Batch.Table]) and are queried through a view "<table>": in
// the caller's transaction, it drops each view (if it exists) and creates
// it again as SELECT * FROM "<table>_v<version>". Both SQLite and
// PostgreSQL change views transactionally, so queries see the old version
// until the transaction that records the switch commits, and the new one
// after; a new version may have other columns than the old.
//
// Table names are SQL identifiers (letters, digits, '_'), optionally
// qualified by a schema, and are written unquoted (PostgreSQL folds them
// to lower case, as it does those of the caller's own statements).
func SwitchViews(tables ...string) TxFunc { return switchViews(sqlExec, tables) }

// execFunc runs a statement in a transaction of type Tx.
type execFunc[Tx any] func(ctx context.Context, tx Tx, query string) error

// switchViews is SwitchViews on transactions of type Tx.
func switchViews[Tx any](exec execFunc[Tx], tables []string) func(context.Context, Tx, int) error {
	return func(ctx context.Context, tx Tx, version int) error {
		for _, t := range tables {
			if !validTable.MatchString(t) {
				return fmt.Errorf("sqlproj: switch views: invalid table name %q", t)
			}
			from := projection.VersionedName(t, version)
			for _, stmt := range []string{"DROP VIEW IF EXISTS " + t, "CREATE VIEW " + t + " AS SELECT * FROM " + from} {
				if err := exec(ctx, tx, stmt); err != nil {
					return fmt.Errorf("sqlproj: switch view %s to %s: %w", t, from, err)
				}
			}
		}
		return nil
	}
}

// DropTables returns a [projection.Projection] Drop function that drops
// "<table>_v<version>" of each table, if it exists. Table names are as for
// [SwitchViews].
func DropTables(tables ...string) TxFunc {
	return eachTable(sqlExec, "drop", "DROP TABLE IF EXISTS ", tables)
}

// ResetTables returns a [projection.Projection] Reset function that
// deletes every row of "<table>_v<version>" of each table, for a rebuild
// in place. Table names are as for [SwitchViews].
func ResetTables(tables ...string) TxFunc {
	return eachTable(sqlExec, "reset", "DELETE FROM ", tables)
}

func eachTable[Tx any](exec execFunc[Tx], what, stmt string, tables []string) func(context.Context, Tx, int) error {
	return func(ctx context.Context, tx Tx, version int) error {
		for _, t := range tables {
			if !validTable.MatchString(t) {
				return fmt.Errorf("sqlproj: %s: invalid table name %q", what, t)
			}
			name := projection.VersionedName(t, version)
			if err := exec(ctx, tx, stmt+name); err != nil {
				return fmt.Errorf("sqlproj: %s %s: %w", what, name, err)
			}
		}
		return nil
	}
}

func sqlExec(ctx context.Context, tx *sql.Tx, query string) error {
	_, err := tx.ExecContext(ctx, query)
	return err
}
