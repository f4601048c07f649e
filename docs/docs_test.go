// Package docs holds eventfold's documentation. Its test keeps the code in
// the documentation honest: every Go code block in docs/*.md and README.md
// must be copied from Go code in the repository that compiles (an
// example_test.go or the example application), line for line, so it cannot
// drift from the API.
package docs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// normalize trims each line and drops blank lines and lines that are only
// an ellipsis comment, so a block may leave out parts of the code it copies.
func normalize(code string) []string {
	var out []string
	for _, line := range strings.Split(code, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "// ..." || line == "…" || line == "// …" {
			continue
		}
		out = append(out, line)
	}
	return out
}

func TestCodeBlocksComeFromCompiledCode(t *testing.T) {
	var sources []string
	require.NoError(t, filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != ".." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "docs_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sources = append(sources, "\n"+strings.Join(normalize(string(b)), "\n")+"\n")
		}
		return nil
	}))
	docs, err := filepath.Glob("*.md")
	require.NoError(t, err)
	docs = append(docs, "../README.md")
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		require.NoError(t, err)
		for i, m := range goBlock.FindAllStringSubmatch(string(b), -1) {
			// Each run of lines between ellipses must appear in one source file.
			for _, part := range splitOnEllipsis(m[1]) {
				want := "\n" + strings.Join(part, "\n") + "\n"
				found := false
				for _, src := range sources {
					if strings.Contains(src, want) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("%s: Go block %d is not in any .go file of the repository:\n%s", doc, i+1, strings.Join(part, "\n"))
				}
			}
		}
	}
}

func splitOnEllipsis(code string) [][]string {
	var parts [][]string
	var cur []string
	for _, line := range strings.Split(code, "\n") {
		switch strings.TrimSpace(line) {
		case "// ...", "…", "// …":
			if len(cur) > 0 {
				parts = append(parts, normalize(strings.Join(cur, "\n")))
			}
			cur = nil
		default:
			cur = append(cur, line)
		}
	}
	if n := normalize(strings.Join(cur, "\n")); len(n) > 0 {
		parts = append(parts, n)
	}
	return parts
}
