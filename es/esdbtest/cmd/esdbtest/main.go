// Command esdbtest runs the in-memory EventStoreDB-compatible server of
// package esdbtest until it receives SIGINT or SIGTERM.
//
//	go run ./es/esdbtest/cmd/esdbtest -addr 127.0.0.1:2113
//
// It prints the connection string for the v4 client on standard output.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventfold/eventfold/es/esdbtest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("esdbtest", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:2113", "TCP address to listen on")
	maxAppend := fs.Int("max-append-size", esdbtest.DefaultMaxAppendSize, "largest append accepted, in bytes")
	version := fs.String("version", esdbtest.DefaultServerVersion, "EventStoreDB version to report")
	if err := fs.Parse(args); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := esdbtest.Start(
		esdbtest.WithAddress(*addr),
		esdbtest.WithMaxAppendSize(*maxAppend),
		esdbtest.WithServerVersion(*version),
	)
	if err != nil {
		return err
	}
	fmt.Println(srv.ConnectionString())
	<-ctx.Done()
	srv.Close()
	return nil
}
