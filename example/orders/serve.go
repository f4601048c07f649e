package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/projection/sqlproj"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// stopSignals are the signals that shut the service down gracefully:
// Ctrl-C, and what systemd, Docker and Kubernetes send.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// signalContext returns a context that ends at the first of [stopSignals].
// Once it has ended, the signals get their default behaviour back: a
// second Ctrl-C ends the process at once. stop releases the signals.
func signalContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, stop = signal.NotifyContext(parent, stopSignals...)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// defaultShutdownTimeout bounds a graceful shutdown unless -shutdown-timeout
// says otherwise.
const defaultShutdownTimeout = 10 * time.Second

// serveCommand serves the HTTP API, with the bus, the relay, the process
// manager and the read models, until interrupted.
func serveCommand(fs *flag.FlagSet) action {
	var in infra
	in.flags(fs)
	addr := fs.String("addr", "127.0.0.1:8080", "the `address` to listen on")
	autoConfirm := fs.Bool("auto-confirm", true, "confirm orders of products in stock by themselves (the stock-check process manager)")
	namespace := busNamespaceFlag(fs)
	fs.BoolVar(&in.busESDB, "bus-esdb", false, "carry commands and events on EventStoreDB (needs -esdb): persistent subscriptions pinned by order, shared by the replicas, and no relay")
	fs.DurationVar(&in.leaseTTL, "lease-ttl", defaultLeaseTTL, "the time-to-live of the leases of the read models' partitions and of the relay: "+
		"a replica that dies has its partitions taken over by the others within about this `long` (plus a second); shorter means faster takeovers and more renewals (one every third of it)")
	ackWait := fs.Duration("bus-ack-wait", 30*time.Second, "with -nats: how `long` NATS waits for a replica to acknowledge a command or an event before it delivers it again, "+
		"to any replica: the messages under way in a replica that died wait this long (set when the bus's consumers are created)")
	timeout := fs.Duration("shutdown-timeout", defaultShutdownTimeout, "on SIGINT or SIGTERM, wait at most this `long` for the requests and handlers under way, then exit anyway")
	otlp := fs.String("otlp", "", "export traces over OTLP/HTTP to this `URL` (such as http://localhost:4318); the OTEL_EXPORTER_OTLP_* variables work too")
	return func(ctx context.Context, stdout, stderr io.Writer, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *timeout <= 0 {
			return usagef("-shutdown-timeout %v: want a positive duration", *timeout)
		}
		if in.leaseTTL < minLeaseTTL {
			return usagef("-lease-ttl %v: want at least %v", in.leaseTTL, minLeaseTTL)
		}
		if *ackWait <= 0 {
			return usagef("-bus-ack-wait %v: want a positive duration", *ackWait)
		}
		if in.busESDB && in.esdb == "" {
			return usagef("-bus-esdb carries the bus on the event store: it needs the events in EventStoreDB (-esdb)")
		}
		if in.busESDB && in.nats != "" {
			return usagef("-bus-esdb and -nats: the bus runs on one of them")
		}
		logger := slog.New(esotel.LogHandler(slog.NewTextHandler(stderr, nil)))
		tel, err := setupTelemetry(ctx, *otlp)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := tel.shutdown(sctx); err != nil {
				logger.Warn("telemetry: shutdown", "error", err)
			}
		}()
		a, err := openApp(ctx, in, logger)
		if err != nil {
			return err
		}
		if in.postgres == "" {
			if err := a.serveAlone(ctx, in.data); err != nil {
				return errors.Join(err, a.Close())
			}
		}
		ns, err := prepareBus(ctx, a, in, *namespace, logger)
		if err != nil {
			return errors.Join(err, a.Close())
		}
		svc, err := newService(ctx, a, serviceConfig{nats: in.nats, busESDB: in.busESDB, ackWait: *ackWait, namespace: ns, autoConfirm: *autoConfirm})
		if err != nil {
			return errors.Join(err, a.Close())
		}
		svc.metrics = tel.metrics
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return errors.Join(err, svc.close(), a.Close())
		}
		fmt.Fprintf(stdout, "orders: serving on http://%s (Ctrl-C stops)\n", ln.Addr())
		// If the shutdown times out, the stores may stay open: parts of the
		// service may still use them, and closing them could wait for
		// ever. The process ends; the stores are consistent at every commit.
		return serve(ctx, ln, svc, serveConfig{shutdownTimeout: *timeout, closeStores: a.Close})
	}
}

// defaultLeaseTTL is the time-to-live of the leases unless -lease-ttl
// says otherwise: the libraries' default.
const defaultLeaseTTL = sqlproj.DefaultLeaseTTL

// minLeaseTTL is the shortest -lease-ttl: the libraries refuse shorter.
const minLeaseTTL = 100 * time.Millisecond

// serveLease is the key of the lease that one serve per SQLite file holds.
const serveLease = "orders/serve"

// serveAloneWait bounds how long serve waits for the lease of its SQLite
// file: a serve that another one holds is refused, not queued.
const serveAloneWait = 2 * time.Second

// errServedAlready means another serve runs on the same SQLite file.
var errServedAlready = errors.New("served already")

// serveAlone takes the lease that makes this serve the only one on its
// SQLite file, data, for as long as it runs; unlock gives it back. Two
// services on one file would share its read models, and the second one's
// runners could only wait in standby: replicas need -postgres. The lease
// of a serve that was killed is taken over at once (sqlproj takes the
// leases of processes of this host that are gone). a.Close gives it back,
// before it closes the database.
func (a *app) serveAlone(ctx context.Context, data string) error {
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	timer := time.AfterFunc(serveAloneWait, cancel)
	_, release, err := a.checkpoints.Lease(lctx, serveLease)
	if timer.Stop() && err == nil {
		a.closers = append(a.closers, func() error { release(); cancel(); return nil })
		return nil
	}
	if err == nil {
		release() // granted as the wait ended: refused all the same
	}
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("lease of %s: %w", data, err)
	}
	holder, herr := a.checkpoints.LeaseHolder(ctx, serveLease)
	if herr != nil || holder == "" {
		holder = "another process"
	}
	return fmt.Errorf("%w: %s is served by %s: one serve per SQLite file (replicas share a database with -postgres)",
		errServedAlready, data, holder)
}

// serveConfig configures [serve].
type serveConfig struct {
	// shutdownTimeout bounds the graceful shutdown (defaultShutdownTimeout
	// if 0).
	shutdownTimeout time.Duration
	// wrap, if set, wraps the API's handler (tests hold requests with it).
	wrap func(http.Handler) http.Handler
	// closeStores, if set, closes the stores, last, within the timeout.
	closeStores func() error
}

// errShutdownTimeout means that the graceful shutdown did not end within
// its timeout: serve returned anyway, with parts of the service still
// stopping.
var errShutdownTimeout = errors.New("the graceful shutdown timed out")

// serve runs svc and its HTTP API on ln until ctx is done (or either
// fails), then shuts them down gracefully, in order:
//
//  1. the HTTP server stops accepting connections and finishes the
//     requests under way (the bus and the read models still run for them);
//  2. the service's parts stop in the order of [running.stop]: the relay
//     (its last batch handled and committed), the bus, the read models
//     (their last batches committed);
//  3. svc's transport closes, then the stores (cfg.closeStores).
//
// If that takes longer than cfg.shutdownTimeout, serve logs it and returns
// an error wrapping [errShutdownTimeout] at once; the shutdown goes on in
// the background until the process ends (without closing the stores if the
// service's parts did not stop), and svc.stopped is closed when it is over.
func serve(ctx context.Context, ln net.Listener, svc *service, cfg serveConfig) error {
	timeout := cfg.shutdownTimeout
	if timeout <= 0 {
		timeout = defaultShutdownTimeout
	}
	var h http.Handler = newAPI(svc).routes()
	if cfg.wrap != nil {
		h = cfg.wrap(h)
	}
	// The requests' contexts do not derive from ctx: a signal does not
	// cancel the requests under way, Shutdown lets them finish.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	rt := svc.start(ctx)
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()

	log := svc.logger
	var httpErr error
	served := true
	select {
	case <-ctx.Done():
		log.Info("shutting down: stop signal received", "timeout", timeout)
	case <-rt.failed:
		log.Error("shutting down: a part of the service failed", "error", rt.cause, "timeout", timeout)
	case httpErr = <-httpDone:
		served = false
		log.Error("shutting down: the HTTP server failed", "error", httpErr, "timeout", timeout)
	}
	svc.stopping.Store(true)
	start := time.Now()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()

	done := make(chan error, 1)
	go func() {
		defer close(svc.stopped)
		var errs []error
		if served {
			err := srv.Shutdown(stopCtx)
			if err != nil {
				_ = srv.Close()
				log.Error("shutdown: the HTTP server closed the connections of the requests still under way", "elapsed", time.Since(start))
			} else {
				log.Info("shutdown: the HTTP server has stopped; the requests under way were answered", "elapsed", time.Since(start))
			}
			if err := <-httpDone; !errors.Is(err, http.ErrServerClosed) {
				errs = append(errs, err)
			}
			errs = append(errs, err)
		}
		stopErr := rt.stop(stopCtx)
		errs = append(errs, stopErr)
		if stopErr != nil && stopCtx.Err() != nil {
			done <- errors.Join(errs...) // serve returns; the rest stops in the background
			rt.wait()
			_ = svc.close()
			return
		}
		if stopErr == nil {
			log.Info("shutdown: the relay, the bus and the read models have stopped", "elapsed", time.Since(start))
		}
		errs = append(errs, svc.close())
		if cfg.closeStores != nil {
			errs = append(errs, cfg.closeStores())
		}
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		if err != nil && stopCtx.Err() != nil {
			return timedOut(log, timeout, errors.Join(httpErr, err))
		}
		log.Info("shutdown complete", "elapsed", time.Since(start))
		return errors.Join(httpErr, err)
	case <-stopCtx.Done():
		_ = srv.Close()
		return timedOut(log, timeout, httpErr)
	}
}

// timedOut logs that the shutdown timed out, and returns the error that
// says so.
func timedOut(log *slog.Logger, timeout time.Duration, err error) error {
	log.Error("shutdown: timed out; exiting without waiting for the rest", "timeout", timeout)
	return errors.Join(fmt.Errorf("%w after %v (-shutdown-timeout)", errShutdownTimeout, timeout), err)
}
