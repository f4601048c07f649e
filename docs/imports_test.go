package docs_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/eventfold/eventfold"

// TestImportGraph keeps the import rules of the architecture (which
// docs/concepts.md explains): es depends on nothing of eventfold; aggregate,
// projection and bus depend on es and never on each other (the relay meets
// the bus through a function value); no library package imports a store
// implementation (es/esotel, the OpenTelemetry vocabulary of events that
// the packages share, is not one), and nothing imports the example. Test kits (…test
// packages) may import what they exercise, and the packages of one store
// share its internal packages (es/sqlstore/sqlite and es/sqlstore/postgres
// import es/sqlstore/internal/backend). A bus transport on an event store
// may import that store's adapter (bus/esdbbus imports es/eventstoredb).
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	require.NoError(t, err, "go list")
	forbidden := map[string][]string{
		"es":         {"aggregate", "projection", "bus", "es/"},
		"aggregate":  {"projection", "bus"},
		"projection": {"aggregate", "bus", "es/"},
		"bus":        {"aggregate", "projection", "es/"},
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if strings.HasPrefix(dep, "example/") && !strings.HasPrefix(pkg, "example/") {
				t.Errorf("%s imports the example %s", pkg, dep)
			}
			if strings.HasSuffix(pkg, "test") || strings.HasPrefix(pkg, "example/") {
				continue // test kits and the application wire what they need
			}
			for top, deny := range forbidden {
				if pkg != top && !strings.HasPrefix(pkg, top+"/") {
					continue
				}
				for _, d := range deny {
					if (dep == d || strings.HasPrefix(dep, strings.TrimSuffix(d, "/")+"/")) && !strings.HasPrefix(dep, pkg) && !strings.HasPrefix(pkg, dep+"/") && dep != "es/esdriver" && dep != "es/esotel" && !internalOf(pkg, dep) && !transportOnStore(pkg, dep) {
						t.Errorf("%s imports %s: %s may not depend on %s", pkg, dep, top, d)
					}
				}
			}
		}
	}
}

// internalOf reports whether dep is an internal package that pkg may import
// by Go's rule: dep is below a directory "internal" whose parent holds pkg.
func internalOf(pkg, dep string) bool {
	parent, _, ok := strings.Cut(dep, "/internal/")
	if !ok {
		parent, ok = strings.CutSuffix(dep, "/internal")
	}
	return ok && strings.HasPrefix(pkg, parent+"/")
}

// transportOnStore reports whether pkg is a bus transport that runs on the
// event store adapter dep: EventStoreDB's persistent subscriptions are its
// consumer groups.
func transportOnStore(pkg, dep string) bool {
	return pkg == "bus/esdbbus" && dep == "es/eventstoredb"
}
