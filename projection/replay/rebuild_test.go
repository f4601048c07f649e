package replay_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/replay"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rebuiltLine matches the final line of a rebuild in place of the seeded
// events.
func rebuiltLine(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + name + `: rebuilt in place: 10 events in [0-9.]+(µs|ms|s) \(\d+ events/s\), at C:10/P:10$`)
}

// catchUp builds the read models of f's projections, then corrupts them so
// that a test can tell a rebuild happened.
func (f *fixture) catchUp(t *testing.T) {
	t.Helper()
	for _, p := range f.ps {
		require.NoError(t, p.(*projection.Runner[projection.NoTx]).CatchUp(t.Context()))
		f.models[p.Name()].corrupt(1)
	}
}

func TestRebuildInPlace(t *testing.T) {
	ctx := t.Context()
	for _, tt := range []struct {
		args    []string
		rebuilt []string // in order
	}{
		{[]string{"rebuild", "b"}, []string{"b"}},
		{[]string{"rebuild", "c", "a"}, []string{"c", "a"}},
		{[]string{"rebuild", "a", "--progress=none", "a"}, []string{"a"}},
		{[]string{"rebuild", "--all"}, []string{"a", "b", "c"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := newFixture(t, "a", "b", "c")
			f.catchUp(t)
			res := run(ctx, tt.args, f.ps...)
			require.Equal(t, replay.ExitOK, res.code, res.stderr)
			assert.Empty(t, res.stderr)

			var finals []string
			for line := range strings.Lines(res.stdout) {
				if strings.Contains(line, "rebuilt") {
					finals = append(finals, strings.SplitN(line, ":", 2)[0])
				}
			}
			assert.Equal(t, tt.rebuilt, finals, res.stdout)
			for name, m := range f.models {
				resets, _ := m.counts()
				if assert.ObjectsAreEqual(true, contains(tt.rebuilt, name)) {
					assert.Regexp(t, rebuiltLine(name), res.stdout)
					assert.Equal(t, 1, resets, name)
					assert.Equal(t, f.want, m.version(1), name)
				} else {
					assert.Zero(t, resets, name)
					assert.Equal(t, 666, m.version(1)["counter-bogus"], "%s is untouched", name)
				}
			}
		})
	}
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func TestRebuildUnknownNameDoesNothing(t *testing.T) {
	f := newFixture(t, "a", "b")
	f.catchUp(t)
	res := run(t.Context(), []string{"rebuild", "a", "nope", "--blue-green"}, f.ps...)
	assert.Equal(t, replay.ExitUsage, res.code)
	assert.Contains(t, res.stderr, "replay rebuild: unknown projection \"nope\"; the projections are: a, b\n\nusage: replay rebuild")
	assert.Empty(t, res.stdout)
	for name, m := range f.models {
		resets, _ := m.counts()
		assert.Zero(t, resets, name)
		assert.Equal(t, 666, m.version(1)["counter-bogus"], name)
		assert.Nil(t, m.version(2), name)
	}
	active, err := f.cps.ActiveVersion(t.Context(), "a")
	require.NoError(t, err)
	assert.Equal(t, 1, active)
}

func TestRebuildBlueGreen(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, "a")
	f.catchUp(t)
	m := f.models["a"]

	res := run(ctx, []string{"rebuild", "--blue-green", "a"}, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Regexp(t, `(?m)^a: built version 2 beside version 1 and switched to it: 10 events in \S+ \(\d+ events/s\), at C:10/P:10$`, res.stdout)
	assert.NotContains(t, res.stdout, "dropped")
	active, err := f.cps.ActiveVersion(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 2, active)
	assert.Equal(t, f.want, m.version(2))
	assert.Equal(t, 666, m.version(1)["counter-bogus"], "version 1 is kept")
	resets, dropped := m.counts()
	assert.Zero(t, resets, "blue/green does not reset")
	assert.Empty(t, dropped)

	res = run(ctx, []string{"list"}, f.ps...)
	assert.Equal(t, "a  v2\n", res.stdout)

	res = run(ctx, []string{"rebuild", "a", "--blue-green", "--drop-old"}, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Regexp(t, `(?m)^a: built version 3 beside version 2 and switched to it: .*\na: dropped version 2\n\z`, res.stdout)
	active, err = f.cps.ActiveVersion(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 3, active)
	assert.Equal(t, f.want, m.version(3))
	assert.Nil(t, m.version(2), "version 2 is dropped")
	_, dropped = m.counts()
	assert.Equal(t, []int{2}, dropped)

	// The version left by the first blue/green rebuild is dropped by hand.
	res = run(ctx, []string{"drop", "a", "v1"}, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Equal(t, "a: dropped version 1\n", res.stdout)
	assert.Nil(t, m.version(1))
	_, dropped = m.counts()
	assert.Equal(t, []int{2, 1}, dropped)

	res = run(ctx, []string{"drop", "a", "3"}, f.ps...)
	assert.Equal(t, replay.ExitFailure, res.code)
	assert.Contains(t, res.stderr, "replay drop: a: projection: invalid projection: a: cannot drop version 3 (the active version is 3)\n")
	assert.Equal(t, f.want, m.version(3))
}

func TestRebuildFailure(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, "a", "b", "c")
	f.models["a"].setBefore(func(ctx context.Context, b projection.Batch) error {
		return errors.New("disk full")
	})
	res := run(ctx, []string{"rebuild", "a", "b", "c"}, f.ps...)
	assert.Equal(t, replay.ExitFailure, res.code)
	assert.Regexp(t, `^replay rebuild: a: projection a: poison event .*disk full\nnot started: b, c\n\z`, res.stderr)
	for _, name := range []string{"b", "c"} {
		resets, _ := f.models[name].counts()
		assert.Zero(t, resets, name)
	}

	// A projection that cannot be rebuilt that way says so.
	res = run(ctx, []string{"rebuild", "--blue-green", "--all"}, &fake{name: "x", err: projection.ErrNoVersions}, &fake{name: "y"})
	assert.Equal(t, replay.ExitFailure, res.code)
	assert.Equal(t, "replay rebuild: x: projection: the checkpoint store does not record versions\nnot started: y\n", res.stderr)
}

// progressLine matches a line of plain progress.
var progressLine = regexp.MustCompile(`^a: (\d+) events, (\d+)% \(C:(\d+)/P:\d+\), \d+ events/s(, (<1s|~\d+s) left)?$`)

func TestProgressLines(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, "a")
	// Lines are the default when stdout is not a terminal: here a file.
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer out.Close()
	var stderr strings.Builder
	code := replay.Run(ctx, []string{"rebuild", "a"}, out, &stderr, f.ps...)
	require.Equal(t, replay.ExitOK, code, stderr.String())
	data, err := os.ReadFile(out.Name())
	require.NoError(t, err)
	stdout := string(data)

	assert.NotContains(t, stdout, "\r")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	require.Len(t, lines, 5, stdout) // a line per batch of 3 events, then the final line
	for i, want := range []struct{ events, percent, commit string }{
		{"3", "30", "3"}, {"6", "60", "6"}, {"9", "90", "9"}, {"10", "100", "10"},
	} {
		m := progressLine.FindStringSubmatch(lines[i])
		require.NotNil(t, m, "line %d: %q", i, lines[i])
		assert.Equal(t, []string{want.events, want.percent, want.commit}, m[1:4], lines[i])
	}
	assert.Regexp(t, rebuiltLine("a"), lines[4])
}

// barFrame matches a drawing of the bar.
var barFrame = regexp.MustCompile(`^a \[(#*)(-*)\] +(\d+)%  (\d+) events  \d+ events/s(  (<1s|~\d+s) left)? *$`)

func TestProgressBar(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, "a", "b")
	res := run(ctx, []string{"rebuild", "--progress=bar", "a", "b"}, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)

	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	require.Len(t, lines, 2, "one line per projection: %q", res.stdout)
	frames := strings.Split(lines[0], "\r")
	require.Len(t, frames, 6, "%q", lines[0]) // "", 4 drawings, the final line
	assert.Empty(t, frames[0], "each drawing starts with \\r")
	for i, want := range []struct {
		filled  int
		percent string
		events  string
	}{{7, "30", "3"}, {14, "60", "6"}, {21, "90", "9"}, {24, "100", "10"}} {
		m := barFrame.FindStringSubmatch(frames[i+1])
		require.NotNil(t, m, "frame %d: %q", i, frames[i+1])
		assert.Len(t, m[1], want.filled, frames[i+1])
		assert.Len(t, m[1]+m[2], 24, frames[i+1])
		assert.Equal(t, []string{want.percent, want.events}, []string{m[3], m[4]}, frames[i+1])
	}
	final := frames[5]
	assert.Regexp(t, rebuiltLine("a"), strings.TrimRight(final, " "))
	assert.GreaterOrEqual(t, len([]rune(final)), len([]rune(strings.TrimRight(frames[4], " "))), "the final line covers the bar")
	assert.Regexp(t, `^\rb \[#######-+\]`, lines[1])
	assert.Regexp(t, rebuiltLine("b"), strings.TrimRight(lines[1][strings.LastIndex(lines[1], "\r")+1:], " "))

	res = run(ctx, []string{"rebuild", "--progress=none", "a"}, f.ps...)
	require.Equal(t, replay.ExitOK, res.code, res.stderr)
	assert.Regexp(t, rebuiltLine("a"), res.stdout)
	assert.Equal(t, 1, strings.Count(res.stdout, "\n"), res.stdout)
}
