// Command orders runs the orders example of eventfold: a shop's orders,
// kept as event-sourced aggregates.
//
// Usage:
//
//	orders <command> [flags]
//
// The commands are:
//
//	demo    tell a scripted story of orders, kept in orders.db
//	serve   serve the HTTP API, the bus and the read models
//	seed    place -n random orders, and move some of them along
//	replay  list, rebuild or drop the read models (replay help for more)
//	status  show where the event store and the read models stand
//	bench   drive a running service with concurrent clients, and measure it
//	bus     drain or discard the messages a deployment left on NATS
//
// Every command keeps events, read models and checkpoints in one SQLite
// file, orders.db (-data changes it), unless flags choose other
// infrastructure: -esdb (events in EventStoreDB), -postgres (read models,
// and events without -esdb, in PostgreSQL), -nats (the bus on NATS). The
// bench command keeps nothing: it drives a service that serve runs, over
// HTTP, and prints the throughput and latencies it measured.
//
// Run "orders <command> -h" for the flags of a command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// command is a subcommand. Adding one is adding an entry to commands.
type command struct {
	name    string
	summary string
	// setup defines the command's flags on fs and returns the function that
	// runs the command once the flags are parsed.
	setup func(fs *flag.FlagSet) action
	// more, if set, prints more help after the flags (the subcommands of
	// replay).
	more func(w io.Writer)
}

// action runs a command with the arguments left after its flags. A
// [usageError] is reported with the command's usage and exit code 2; other
// errors with exit code 1.
type action func(ctx context.Context, stdout, stderr io.Writer, args []string) error

// usageError means a command was called with bad arguments.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a [usageError] with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// commands are the subcommands, in the order the usage lists them.
var commands = []command{
	{name: "demo", summary: "tell a scripted story of orders, kept in orders.db", setup: demoCommand},
	{name: "serve", summary: "serve the HTTP API, the bus and the read models", setup: serveCommand},
	{name: "seed", summary: "place -n random orders, and move some of them along", setup: seedCommand},
	{name: "replay", summary: "list, rebuild or drop the read models (replay help for more)", setup: replayCommand, more: replayHelp},
	{name: "status", summary: "show where the event store and the read models stand", setup: statusCommand},
	{name: "bench", summary: "drive a running service with concurrent clients, and measure it", setup: benchCommand},
	{name: "bus", summary: "drain or discard the messages a deployment left on NATS (bus -h for more)", setup: busCommand, more: busHelp},
}

func main() {
	ctx, stop := signalContext(context.Background())
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
	err := act(ctx, stdout, stderr, fs.Args())
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
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
	if c.more != nil {
		fmt.Fprintln(w)
		c.more(w)
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

// demoCommand is the demo subcommand: it runs [runDemo] on the application's
// data (orders.db unless flags say otherwise).
func demoCommand(fs *flag.FlagSet) action {
	var in infra
	in.flags(fs)
	return func(ctx context.Context, stdout, stderr io.Writer, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		a, err := openApp(ctx, in, quietLogger())
		if err != nil {
			return err
		}
		defer a.Close()
		return runDemo(ctx, stdout, a)
	}
}

// quietLogger logs warnings and errors to standard error.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
