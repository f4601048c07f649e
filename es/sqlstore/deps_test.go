package sqlstore_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBackendDependencies checks that each package links only its own
// database driver: a program on PostgreSQL does not link SQLite, and one on
// SQLite does not link pgx.
func TestBackendDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies:", err)
	}
	const module = "github.com/eventfold/eventfold/es/sqlstore"
	for pkg, banned := range map[string][]string{
		module:               {"github.com/jackc/pgx", "modernc.org/sqlite"},
		module + "/postgres": {"modernc.org/sqlite"},
		module + "/sqlite":   {"github.com/jackc/pgx"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		out, err := exec.CommandContext(ctx, goTool, "list", "-deps", pkg).Output()
		cancel()
		require.NoError(t, err, "go list -deps %s", pkg)
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range banned {
				assert.False(t, strings.HasPrefix(dep, b), "%s imports %s", pkg, dep)
			}
		}
	}
}
