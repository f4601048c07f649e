// Command esdbtest runs the in-memory EventStoreDB-compatible server of
// package esdbtest until it receives SIGINT or SIGTERM.
//
//	go run ./es/esdbtest/cmd/esdbtest -addr 127.0.0.1:2113
//
// It prints the connection string for the v4 client on standard output,
// then serves until it is interrupted, and closes the server gracefully.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventfold/eventfold/es/esdbtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "esdbtest:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("esdbtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:2113", "TCP address to listen on")
	maxAppend := fs.Int("max-append-size", esdbtest.DefaultMaxAppendSize, "largest append accepted, in bytes")
	version := fs.String("version", esdbtest.DefaultServerVersion, "EventStoreDB version to report")
	if err := fs.Parse(args); err != nil {
		return err
	}

	srv, err := esdbtest.Start(
		esdbtest.WithAddress(*addr),
		esdbtest.WithMaxAppendSize(*maxAppend),
		esdbtest.WithServerVersion(*version),
	)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintln(stdout, srv.ConnectionString())
	<-ctx.Done()
	return nil
}
