package replay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/eventfold/eventfold/projection"
)

// Projection is what the tool drives: a projection it can list, inspect,
// rebuild and drop versions of. *[projection.Runner] satisfies it for
// every transaction type.
type Projection interface {
	Name() string
	Status(ctx context.Context) (projection.Status, error)
	Lag(ctx context.Context) (projection.Lag, error)
	Rebuild(ctx context.Context, report func(projection.Progress)) error
	RebuildBlueGreen(ctx context.Context, report func(projection.Progress)) (from, to int, err error)
	DropVersion(ctx context.Context, version int) error
}

// Exit codes of [Tool.Run].
const (
	ExitOK          = 0   // the command succeeded
	ExitFailure     = 1   // the command failed; the error is on stderr
	ExitUsage       = 2   // bad command line; the usage is on stderr
	ExitInterrupted = 130 // a rebuild was interrupted (128 + SIGINT); run it again to resume
)

// Tool is the replay tool for a set of projections. Create it with [New];
// it keeps no state between runs, so one Tool may run any number of
// command lines, one after another or at once.
type Tool struct {
	name        string
	projections []Projection
}

// New returns the tool for projections. name is the command that runs it,
// as the usage lines show it: "orders replay".
func New(name string, projections ...Projection) *Tool {
	return &Tool{name: name, projections: slices.Clone(projections)}
}

// Run runs the command line of the tool named "replay" on projections; see
// [Tool.Run].
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, projections ...Projection) int {
	return New("replay", projections...).Run(ctx, args, stdout, stderr)
}

// Run runs a command line (args without the program and "replay" words)
// and returns the exit code: [ExitOK], [ExitFailure], [ExitUsage] or
// [ExitInterrupted]. Output goes to stdout; errors, usage after a usage
// error, and the note of an interrupted rebuild go to stderr. Cancelling
// ctx (Ctrl-C, with [os/signal.NotifyContext]) interrupts a rebuild safely.
func (t *Tool) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if err := t.check(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", t.name, err)
		return ExitFailure
	}
	if len(args) == 0 {
		t.usage(stderr)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		t.usage(stdout)
		return ExitOK
	case "help":
		return t.help(args[1:], stdout, stderr)
	}
	if c, ok := t.command(args[0]); ok {
		return t.run(ctx, c, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n", t.name, args[0])
	t.usage(stderr)
	return ExitUsage
}

// check reports projections the tool cannot tell apart.
func (t *Tool) check() error {
	seen := make(map[string]bool, len(t.projections))
	for i, p := range t.projections {
		if p == nil {
			return fmt.Errorf("projection %d is nil", i)
		}
		if seen[p.Name()] {
			return fmt.Errorf("two projections are named %q", p.Name())
		}
		seen[p.Name()] = true
	}
	return nil
}

// command is a subcommand of the tool.
type command struct {
	name    string
	args    string // the arguments after the flags, for the usage line
	summary string
	// setup defines the command's flags on fs and returns the function that
	// runs it once they are parsed.
	setup func(t *Tool, fs *flag.FlagSet) action
}

// action runs a command with its positional arguments. A *usageError
// means exit code 2 with the usage; an *interruptedError exit code 130;
// other errors exit code 1.
type action func(ctx context.Context, out output, args []string) error

// output is where a command writes.
type output struct {
	stdout, stderr io.Writer
}

// usageError means a command was called with bad arguments.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// interruptedError means ctx ended a rebuild; its message says how to go on.
type interruptedError struct{ msg string }

func (e *interruptedError) Error() string { return e.msg }

func (t *Tool) commands() []command {
	return []command{
		{name: "list", summary: "list the projections and their versions", setup: (*Tool).listCommand},
		{name: "status", args: "[NAME...]", summary: "show where projections stand in the log and how far behind they are", setup: (*Tool).statusCommand},
		{name: "rebuild", args: "NAME... | --all", summary: "rebuild projections from the start of the log, in place or blue/green", setup: (*Tool).rebuildCommand},
		{name: "drop", args: "NAME VERSION", summary: "drop an old version of a projection, left by a blue/green rebuild", setup: (*Tool).dropCommand},
	}
}

func (t *Tool) command(name string) (command, bool) {
	for _, c := range t.commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// run parses the command's flags and runs it.
func (t *Tool) run(ctx context.Context, c command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(t.name+" "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed here, where they belong
	act := c.setup(t, fs)
	positional, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		t.commandUsage(stdout, c, fs)
		return ExitOK
	} else if err != nil {
		return t.usageError(stderr, c, fs, err)
	}
	err = act(ctx, output{stdout, stderr}, positional)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, new(*usageError)):
		return t.usageError(stderr, c, fs, err)
	case errors.As(err, new(*interruptedError)):
		fmt.Fprintf(stderr, "%s %s: %v\n", t.name, c.name, err)
		return ExitInterrupted
	default:
		fmt.Fprintf(stderr, "%s %s: %v\n", t.name, c.name, err)
		return ExitFailure
	}
}

// parse parses flags and positional arguments in any order
// ("rebuild a --blue-green b"); everything after "--" is positional.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func (t *Tool) usageError(w io.Writer, c command, fs *flag.FlagSet, err error) int {
	fmt.Fprintf(w, "%s %s: %v\n\n", t.name, c.name, err)
	t.commandUsage(w, c, fs)
	return ExitUsage
}

func (t *Tool) commandUsage(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s %s [flags]", t.name, c.name)
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fmt.Fprintf(w, "\n\n%s.\n", capitalize(c.summary))
	var hasFlags bool
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

func (t *Tool) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s <command> [flags] [NAME...]\n\n", t.name)
	fmt.Fprint(w, "Rebuild and inspect read models (projections).\n\nCommands:\n")
	for _, c := range t.commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n", "help", "show this help, or a command's: help <command>")
	fmt.Fprintf(w, "\nRun \"%s <command> -h\" for the flags of a command.\n", t.name)
}

// help runs "help [command]".
func (t *Tool) help(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		t.usage(stdout)
		return ExitOK
	case 1:
		if c, ok := t.command(args[0]); ok {
			fs := flag.NewFlagSet(t.name+" "+c.name, flag.ContinueOnError)
			c.setup(t, fs)
			t.commandUsage(stdout, c, fs)
			return ExitOK
		}
		fmt.Fprintf(stderr, "%s help: unknown command %q\n\n", t.name, args[0])
	default:
		fmt.Fprintf(stderr, "%s help: want one command, got %q\n\n", t.name, args)
	}
	t.usage(stderr)
	return ExitUsage
}

// selected returns the projections named, in the order given and without
// repeats; all of them when names is empty. An unknown name is a usage
// error that lists the known ones.
func (t *Tool) selected(names []string) ([]Projection, error) {
	if len(names) == 0 {
		return t.projections, nil
	}
	var (
		out     []Projection
		unknown []string
		seen    = make(map[string]bool, len(names))
	)
	for _, name := range names {
		i := slices.IndexFunc(t.projections, func(p Projection) bool { return p.Name() == name })
		switch {
		case i < 0:
			unknown = append(unknown, fmt.Sprintf("%q", name))
		case !seen[name]:
			seen[name] = true
			out = append(out, t.projections[i])
		}
	}
	if len(unknown) > 0 {
		word := "projection"
		if len(unknown) > 1 {
			word = "projections"
		}
		return nil, usagef("unknown %s %s; the projections are: %s", word, strings.Join(unknown, ", "), t.names())
	}
	return out, nil
}

func (t *Tool) names() string {
	if len(t.projections) == 0 {
		return "(none)"
	}
	names := make([]string, len(t.projections))
	for i, p := range t.projections {
		names[i] = p.Name()
	}
	return strings.Join(names, ", ")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
