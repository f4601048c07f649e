// Command esdbtest runs the EventStoreDB-compatible server of package
// esdbtest as a local development server until it receives SIGINT or
// SIGTERM.
//
//	go run ./es/esdbtest/cmd/esdbtest -addr 127.0.0.1:2113 -data ./esdb-data
//
// It prints the connection string for the v4 client on standard output,
// logs what it serves on standard error (address, TLS, users, data
// directory and the events loaded from it, the dataset of -load, the
// version it reports), then serves until it is interrupted, and closes the
// server gracefully.
//
// Flags:
//
//	-addr host:port        TCP address to listen on (127.0.0.1:2113)
//	-data DIR              keep the log in DIR: events, stream metadata and
//	                       persistent subscription groups (resuming after their
//	                       last checkpoint) survive a restart, and every write
//	                       is on disk before it is acknowledged; without it
//	                       everything lives in memory
//	-load FILE             load the dataset FILE (JSON Lines, one event a
//	                       line: stream, type, id, data, metadata, created,
//	                       position…; see "Datasets" in go doc esdbtest) at
//	                       start, all or nothing; with -data, a dataset
//	                       stored already is not loaded again
//	-insecure              plain gRPC without credentials (the default)
//	-tls                   TLS with a certificate generated at start; clients
//	                       connect with tlsVerifyCert=false
//	-tls-self-signed FILE  TLS with a self-signed certificate written to FILE
//	                       (its key to FILE.key, reused while valid): clients
//	                       connect with tlsCAFile=FILE
//	-tls-cert FILE -tls-key FILE
//	                       TLS with this PEM certificate and key; add
//	                       -tls-ca FILE to print tlsCAFile=FILE in the
//	                       connection string instead of tlsVerifyCert=false
//	-user login:password   a user TLS clients may log in as (repeatable); the
//	                       user admin (password changeit) always exists and
//	                       -user admin:secret changes its password
//	-max-append-size N     largest append accepted, in bytes (1 MiB)
//	-version X.Y.Z         EventStoreDB version to report (24.10.0), up to
//	                       25.x; the server behaves as that version: 25.0.0
//	                       or later also serves KurrentDB 25's multi-stream
//	                       appends and caught-up details
//
// With TLS, every call needs credentials, as on EventStoreDB; the printed
// connection string carries the admin's.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
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

// settings are the parsed flags.
type settings struct {
	addr          string
	data          string
	load          string
	insecure      bool
	tls           bool
	tlsSelfSigned string
	tlsCert       string
	tlsKey        string
	tlsCA         string
	users         [][2]string
	maxAppend     int
	version       string
}

// parseFlags parses and checks the command line.
func parseFlags(args []string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("esdbtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.addr, "addr", "127.0.0.1:2113", "TCP `address` to listen on")
	fs.StringVar(&s.data, "data", "", "`directory` that keeps the log across restarts (default: in memory)")
	fs.StringVar(&s.load, "load", "", "dataset `file` (JSON Lines, see go doc esdbtest) to load at start, all or nothing")
	fs.BoolVar(&s.insecure, "insecure", false, "plain gRPC without credentials (the default)")
	fs.BoolVar(&s.tls, "tls", false, "TLS with a certificate generated at start (clients: tlsVerifyCert=false)")
	fs.StringVar(&s.tlsSelfSigned, "tls-self-signed", "", "TLS with a self-signed certificate written to `file` for clients' tlsCAFile (key in file.key)")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "TLS certificate PEM `file`")
	fs.StringVar(&s.tlsKey, "tls-key", "", "TLS private key PEM `file`")
	fs.StringVar(&s.tlsCA, "tls-ca", "", "CA certificate `file` printed as tlsCAFile (with -tls-cert)")
	fs.Func("user", "a user `login:password` TLS clients may log in as (repeatable)", func(v string) error {
		login, password, ok := strings.Cut(v, ":")
		if !ok || login == "" || password == "" {
			return fmt.Errorf("want login:password, got %q", v)
		}
		s.users = append(s.users, [2]string{login, password})
		return nil
	})
	fs.IntVar(&s.maxAppend, "max-append-size", esdbtest.DefaultMaxAppendSize, "largest append accepted, in `bytes`")
	fs.StringVar(&s.version, "version", esdbtest.DefaultServerVersion, "EventStoreDB or KurrentDB `version` to report, up to 25.x")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return s, s.check()
}

// check rejects flags that contradict each other.
func (s settings) check() error {
	modes := 0
	for _, on := range []bool{s.tls, s.tlsSelfSigned != "", s.tlsCert != "" || s.tlsKey != ""} {
		if on {
			modes++
		}
	}
	var errs []error
	if modes > 1 {
		errs = append(errs, errors.New("-tls, -tls-self-signed and -tls-cert exclude each other"))
	}
	if s.insecure && modes > 0 {
		errs = append(errs, errors.New("-insecure excludes the TLS flags"))
	}
	if (s.tlsCert == "") != (s.tlsKey == "") {
		errs = append(errs, errors.New("-tls-cert and -tls-key go together"))
	}
	if s.tlsCA != "" && s.tlsCert == "" {
		errs = append(errs, errors.New("-tls-ca needs -tls-cert"))
	}
	if len(s.users) > 0 && modes == 0 {
		errs = append(errs, errors.New("-user needs TLS: without it the v4 client sends no credentials"))
	}
	return errors.Join(errs...)
}

// secure reports whether the server serves TLS.
func (s settings) secure() bool {
	return s.tls || s.tlsSelfSigned != "" || s.tlsCert != ""
}

// options turns the settings into server options, and returns the
// tlsCAFile clients should use ("" for none).
func (s settings) options(logger *slog.Logger) ([]esdbtest.Option, string, error) {
	opts := []esdbtest.Option{
		esdbtest.WithAddress(s.addr),
		esdbtest.WithMaxAppendSize(s.maxAppend),
		esdbtest.WithServerVersion(s.version),
		esdbtest.WithLogger(logger),
	}
	if s.data != "" {
		opts = append(opts, esdbtest.WithDataDir(s.data))
	}
	if s.load != "" {
		opts = append(opts, esdbtest.WithDataset(s.load))
	}
	for _, u := range s.users {
		opts = append(opts, esdbtest.WithUser(u[0], u[1]))
	}
	caFile := ""
	switch {
	case s.tls:
		opts = append(opts, esdbtest.WithTLS())
	case s.tlsSelfSigned != "":
		cert, err := selfSigned(s.tlsSelfSigned, s.addr)
		if err != nil {
			return nil, "", err
		}
		opts = append(opts, esdbtest.WithCertificate(cert))
		caFile = s.tlsSelfSigned
	case s.tlsCert != "":
		cert, err := tls.LoadX509KeyPair(s.tlsCert, s.tlsKey)
		if err != nil {
			return nil, "", fmt.Errorf("load TLS certificate: %w", err)
		}
		opts = append(opts, esdbtest.WithCertificate(cert))
		caFile = s.tlsCA
	}
	if caFile != "" {
		abs, err := filepath.Abs(caFile)
		if err != nil {
			return nil, "", fmt.Errorf("CA file: %w", err)
		}
		caFile = abs
	}
	return opts, caFile, nil
}

// adminPassword returns the password of the admin user.
func (s settings) adminPassword() string {
	password := esdbtest.DefaultPassword
	for _, u := range s.users {
		if u[0] == esdbtest.DefaultUser {
			password = u[1]
		}
	}
	return password
}

// connectionString returns what the v4 client connects with.
func (s settings) connectionString(srv *esdbtest.Server, caFile string) string {
	if !s.secure() {
		return srv.ConnectionString()
	}
	q := "tls=true&tlsVerifyCert=false"
	if caFile != "" {
		q = "tls=true&tlsCAFile=" + strings.ReplaceAll(url.QueryEscape(caFile), "%2F", "/")
	}
	u := url.URL{
		Scheme:   "esdb",
		User:     url.UserPassword(esdbtest.DefaultUser, s.adminPassword()),
		Host:     srv.Addr(),
		RawQuery: q,
	}
	return u.String()
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opts, caFile, err := s.options(logger)
	if err != nil {
		return err
	}
	srv, err := esdbtest.Start(opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	logger.Info("esdbtest: serving", s.describe(srv, caFile)...)
	fmt.Fprintln(stdout, s.connectionString(srv, caFile))
	<-ctx.Done()
	logger.Info("esdbtest: stopping")
	return nil
}

// describe returns the attributes of the "serving" log line.
func (s settings) describe(srv *esdbtest.Server, caFile string) []any {
	tlsMode := "off"
	switch {
	case s.tls:
		tlsMode = "generated certificate, not verifiable"
	case s.tlsSelfSigned != "":
		tlsMode = "self-signed certificate " + caFile
	case s.tlsCert != "":
		tlsMode = "certificate " + s.tlsCert
	}
	attrs := []any{"addr", srv.Addr(), "tls", tlsMode, "version", s.version}
	if s.secure() {
		users := []string{esdbtest.DefaultUser}
		for _, u := range s.users {
			if !slices.Contains(users, u[0]) {
				users = append(users, u[0])
			}
		}
		attrs = append(attrs, "users", strings.Join(users, ","))
	}
	data := "none (in memory)"
	if s.data != "" {
		data = s.data
	}
	return append(attrs, "data", data)
}
