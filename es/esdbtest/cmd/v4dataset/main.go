// Command v4dataset writes, as an esdbtest dataset, the events that the
// cases of the EventStore-Client-Go v4 test suite which need a populated
// node read (its testdata docker image): streams dataset20M-0 and
// dataset20M-1800 and the `$all` records around them, built from the
// suite's resources/test files in the module cache (see package
// es/esdbtest/internal/v4suite for what is taken and what generated).
//
//	go run ./es/esdbtest/cmd/v4dataset -o v4suite.jsonl
//	go run ./es/esdbtest/cmd/esdbtest -load v4suite.jsonl
//
// Flags:
//
//	-o FILE          write the dataset to FILE (default: standard output)
//	-resources DIR   read the suite's files from DIR (default: the
//	                 resources/test directory of the v4 client module, found
//	                 with go list -m from the current directory)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/eventfold/eventfold/es/esdbtest/internal/v4suite"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "v4dataset:", err)
		os.Exit(1)
	}
}

// run writes the dataset as the flags say.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("v4dataset", flag.ContinueOnError)
	out := fs.String("o", "", "write the dataset to `file` (default: standard output)")
	resources := fs.String("resources", "", "the suite's resources/test `directory` (default: found with go list -m)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	dir := *resources
	if dir == "" {
		var err error
		if dir, err = v4suite.ResourcesDir(ctx); err != nil {
			return err
		}
	}
	if *out == "" {
		return v4suite.Build(stdout, dir)
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := v4suite.Build(f, dir); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
