// Command orders runs the orders example of eventfold: a shop's orders,
// kept as event-sourced aggregates.
//
// Usage:
//
//	orders <command> [flags]
//
// The commands are:
//
//	demo   tell a scripted story of orders on an in-memory event store
//	       (or on EventStoreDB: demo --esdb esdb://localhost:2113?tls=false)
//
// Run "orders <command> -h" for the flags of a command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/eventfold/eventfold/es/memstore"
)

// command is a subcommand. Adding one is adding an entry to commands.
type command struct {
	name    string
	summary string
	// setup defines the command's flags on fs and returns the function that
	// runs the command once the flags are parsed.
	setup func(fs *flag.FlagSet) action
}

// action runs a command with the arguments left after its flags. A
// [usageError] is reported with the command's usage and exit code 2; other
// errors with exit code 1.
type action func(ctx context.Context, stdout io.Writer, args []string) error

// usageError means a command was called with bad arguments.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a [usageError] with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// commands are the subcommands, in the order the usage lists them.
var commands = []command{
	{name: "demo", summary: "tell a scripted story of orders on an in-memory event store", setup: demoCommand},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args (without the program name) and returns the
// exit code: 0 for success, 1 when the command failed, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "orders: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// run parses the command's flags and runs it.
func (c command) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("orders "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed here, where they belong
	act := c.setup(fs)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		c.usage(stdout, fs)
		return 0
	} else if err != nil {
		return c.usageError(stderr, fs, err)
	}
	err := act(ctx, stdout, fs.Args())
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(*usageError)):
		return c.usageError(stderr, fs, err)
	default:
		fmt.Fprintf(stderr, "orders %s: %v\n", c.name, err)
		return 1
	}
}

// usageError reports err and the command's usage on w, and returns exit code 2.
func (c command) usageError(w io.Writer, fs *flag.FlagSet, err error) int {
	fmt.Fprintf(w, "orders %s: %v\n\n", c.name, err)
	c.usage(w, fs)
	return 2
}

func (c command) usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: orders %s [flags]\n\n%s.\n", c.name, capitalize(c.summary))
	var hasFlags bool
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: orders <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun \"orders <command> -h\" for the flags of a command.\n")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// demoCommand is the demo subcommand: it runs [runDemo] on an in-memory
// store, or on EventStoreDB with --esdb.
func demoCommand(fs *flag.FlagSet) action {
	esdbConn := fs.String("esdb", os.Getenv("EVENTFOLD_ESDB"), "run on EventStoreDB at this `connection string` (esdb://host:2113?tls=false) instead of in memory; default $EVENTFOLD_ESDB")
	return func(ctx context.Context, stdout io.Writer, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *esdbConn == "" {
			return runDemo(ctx, stdout, memstore.New())
		}
		store, err := eventstoredb.New(*esdbConn)
		if err != nil {
			return err
		}
		defer store.Close()
		return runDemo(ctx, stdout, store)
	}
}
