package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
)

// A deployment is one event store and the services that run on it. Its
// identity lives in the store itself, so that it works alike on SQLite,
// PostgreSQL and EventStoreDB, and follows the data when the data moves:
//
//   - deploymentStream holds one event, written once with es.NoStream: the
//     deployment's random ID, the default namespace of its bus topics;
//   - busUseStream records which transport each serve used, and what
//     bus drain and bus discard did, so that a serve without -nats can warn
//     about messages that the last serve may have left on NATS.
const (
	deploymentStream = "orders.deployment"
	busUseStream     = "orders.deployment.bus"
)

// Event types of the deployment streams.
const (
	deploymentCreatedType = "DeploymentCreated"
	busUsedType           = "BusUsed"
)

// The transports and actions that busUseStream records.
const (
	useNATS      = "nats"
	useInProcess = "in-process"
	useESDB      = "eventstoredb"
	useDrained   = "drained"
	useDiscarded = "discarded"
)

// deploymentCreated is the first event of deploymentStream.
type deploymentCreated struct {
	ID string `json:"id"`
}

// busUse is an event of busUseStream.
type busUse struct {
	// Transport is what the bus ran on (useNATS, useInProcess, useESDB), or what was
	// done to the messages on NATS (useDrained, useDiscarded).
	Transport string    `json:"transport"`
	Namespace string    `json:"namespace"`
	At        time.Time `json:"at"`
}

// deployment is what the event store says about its deployment.
type deployment struct {
	ID      string
	LastBus *busUse // nil before the first serve
}

// loadDeployment reads the deployment's identity from store, creating it
// on the first call.
func loadDeployment(ctx context.Context, store es.Store) (deployment, error) {
	var d deployment
	for attempt := 0; d.ID == "" && attempt < 2; attempt++ {
		var err error
		if d.ID, err = readDeploymentID(ctx, store); err != nil {
			return d, err
		}
		if d.ID != "" {
			break
		}
		id := newDeploymentID()
		data, _ := json.Marshal(deploymentCreated{ID: id})
		_, err = store.Append(ctx, deploymentStream, es.NoStream, es.EventData{Type: deploymentCreatedType, Data: data})
		if errors.Is(err, es.ErrWrongExpectedVersion) {
			continue // another process created it first: read its ID
		}
		if err != nil {
			return d, fmt.Errorf("create the deployment's ID: %w", err)
		}
		d.ID = id
	}
	if d.ID == "" {
		return d, errors.New("the deployment's ID could not be read or created")
	}
	e, ok, err := es.LastEvent(ctx, store, busUseStream)
	if err != nil {
		return d, fmt.Errorf("read %s: %w", busUseStream, err)
	}
	if ok {
		var u busUse
		if err := json.Unmarshal(e.Data, &u); err != nil {
			return d, fmt.Errorf("read %s: %w", busUseStream, err)
		}
		d.LastBus = &u
	}
	return d, nil
}

func readDeploymentID(ctx context.Context, store es.Store) (string, error) {
	for e, err := range store.ReadStream(ctx, deploymentStream, es.ReadStreamOptions{Limit: 1}) {
		if errors.Is(err, es.ErrStreamNotFound) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", deploymentStream, err)
		}
		var c deploymentCreated
		if err := json.Unmarshal(e.Data, &c); err != nil || c.ID == "" {
			return "", fmt.Errorf("read %s: not a deployment ID: %q", deploymentStream, e.Data)
		}
		return c.ID, nil
	}
	return "", nil
}

// newDeploymentID returns a random ID, valid as a bus namespace.
func newDeploymentID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails
	return "d" + hex.EncodeToString(b)
}

// busUseKeep is how many records busUseStream keeps ($maxCount).
const busUseKeep = 10

// recordBusUse appends a record to busUseStream.
func recordBusUse(ctx context.Context, store es.Store, transport, namespace string) error {
	data, _ := json.Marshal(busUse{Transport: transport, Namespace: namespace, At: time.Now().UTC()})
	res, err := store.Append(ctx, busUseStream, es.Any, es.EventData{Type: busUsedType, Data: data})
	if err != nil {
		return fmt.Errorf("record the bus's transport: %w", err)
	}
	if res.Revision == 0 { // the stream's first event: cap it
		if _, err := es.SetStreamMetadata(ctx, store, busUseStream, es.Any, es.StreamMetadata{MaxCount: busUseKeep}); err != nil {
			return fmt.Errorf("cap %s: %w", busUseStream, err)
		}
	}
	return nil
}

// busNamespaceFlag defines -bus-namespace on fs.
func busNamespaceFlag(fs *flag.FlagSet) *string {
	return fs.String("bus-namespace", "", "put the bus's topics (NATS streams and consumers) in this `namespace` (letters, digits, '-', '_'); by default the deployment's ID, kept in the event store")
}

// deploymentTimeout bounds serve's reads and writes of the deployment
// streams at start.
const deploymentTimeout = 5 * time.Second

// prepareBus returns the namespace of the bus of a serve on a (ns if set,
// else the deployment's ID), warns on logger when the last serve used
// NATS and this one does not, and records the transport this serve uses.
// Only a bus on NATS needs the store for it: without -nats (the namespace
// of an in-process bus matters to nobody), or with -bus-namespace, a store
// that does not answer (EventStoreDB away at start) is logged and the
// serve goes on.
func prepareBus(ctx context.Context, a *app, in infra, ns string, logger *slog.Logger) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, deploymentTimeout)
	defer cancel()
	transport := useInProcess
	switch {
	case in.nats != "":
		transport = useNATS
	case in.busESDB:
		transport = useESDB
	}
	d, err := loadDeployment(ctx, a.store)
	if err != nil {
		if in.nats != "" && ns == "" {
			return "", fmt.Errorf("the bus's namespace is the deployment's ID, kept in the event store (or give -bus-namespace): %w", err)
		}
		logger.Warn("could not read the deployment's record of its bus from the event store; serving without it", "error", err)
		return ns, nil
	}
	if ns == "" {
		ns = d.ID
	}
	if in.nats == "" && d.LastBus != nil && d.LastBus.Transport == useNATS {
		logger.Warn("the last serve of this deployment carried its bus on NATS: the commands and events it left there unconsumed "+
			"stay pending until a serve with -nats, or: orders bus drain -nats URL (handles them), "+
			"orders bus discard -nats URL -yes (deletes them)",
			"namespace", d.LastBus.Namespace, "last_served", d.LastBus.At.Format(time.RFC3339),
			"drain", drainCommand(in, d.LastBus.Namespace))
	}
	if err := recordBusUse(ctx, a.store, transport, ns); err != nil {
		logger.Warn("could not record the bus's transport in the event store", "error", err)
	}
	return ns, nil
}

// drainCommand is the command line that drains namespace's messages.
func drainCommand(in infra, namespace string) string {
	var b strings.Builder
	b.WriteString("orders bus drain -nats URL")
	if in.postgres != "" {
		b.WriteString(" -postgres URL")
	} else if in.esdb == "" {
		fmt.Fprintf(&b, " -data %s", in.data)
	}
	if in.esdb != "" {
		b.WriteString(" -esdb URL")
	}
	if namespace != "" {
		fmt.Fprintf(&b, " -bus-namespace %s", namespace)
	}
	return b.String()
}

// busCommand is the bus subcommand: drain or discard the messages that a
// deployment left on NATS.
func busCommand(fs *flag.FlagSet) action {
	var in infra
	in.flags(fs)
	ns := busNamespaceFlag(fs)
	yes := fs.Bool("yes", false, "discard: delete without asking")
	drainTimeout := fs.Duration("timeout", 10*time.Minute, "drain: give up after this `long`")
	return func(ctx context.Context, stdout, stderr io.Writer, args []string) error {
		args, err := takeBusFlags(fs, args, yes)
		if err != nil {
			return usagef("%v", err)
		}
		if len(args) != 1 || (args[0] != "drain" && args[0] != "discard") {
			return usagef("want drain or discard, got %q", args)
		}
		if in.nats == "" {
			return usagef("-nats URL is required")
		}
		if err := in.requireData(); err != nil {
			return err
		}
		logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		a, err := openApp(ctx, in, logger)
		if err != nil {
			return err
		}
		defer a.Close()
		d, err := loadDeployment(ctx, a.store)
		if err != nil {
			return err
		}
		if *ns == "" {
			*ns = d.ID
		}
		if args[0] == "drain" {
			if in.postgres == "" {
				// As a serve: refused while one runs on the file.
				if err := a.serveAlone(ctx, in.data); err != nil {
					return err
				}
			}
			return drainBus(ctx, a, in.nats, *ns, *drainTimeout, stdout)
		}
		return discardBus(ctx, a, in.nats, *ns, *yes, stdout)
	}
}

// busHelp prints the bus command's subcommands.
func busHelp(w io.Writer) {
	fmt.Fprint(w, `Subcommands:
  drain    handle the messages that the deployment's bus left on NATS, with the
           service's handlers, until none is pending, then exit
  discard  delete the deployment's JetStream streams and consumers, and their
           messages (prints what it would delete; deletes with -yes)

The deployment's namespace is its ID, kept in the event store, unless
-bus-namespace names another. Stop the deployment's serve processes first.
`)
}

// takeBusFlags is takeFlags, with -yes (a bool flag, which takes no value)
// among the arguments too.
func takeBusFlags(fs *flag.FlagSet, args []string, yes *bool) ([]string, error) {
	var rest []string
	for _, a := range args {
		switch a {
		case "-yes", "--yes", "-yes=true", "--yes=true":
			*yes = true
		default:
			rest = append(rest, a)
		}
	}
	return takeFlags(fs, rest)
}

// busPoll is how often drain asks NATS what is pending.
const busPoll = 200 * time.Millisecond

// drainBus runs the service's bus on NATS in namespace (its handlers, no
// relay and no read models) until its consumers have nothing pending, then
// stops it and records the drain.
func drainBus(ctx context.Context, a *app, natsURL, namespace string, timeout time.Duration, stdout io.Writer) error {
	svc, err := newService(ctx, a, serviceConfig{nats: natsURL, namespace: namespace, autoConfirm: true})
	if err != nil {
		return err
	}
	defer svc.close()
	prefix := svc.bus.TopicPrefix()
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	done := make(chan error, 1)
	go func() { done <- svc.bus.Run(runCtx) }()
	stopBus := func() error {
		stop()
		return <-done
	}
	select {
	case <-svc.bus.Running():
	case err := <-done:
		return fmt.Errorf("drain: the bus did not start: %w", err)
	case <-ctx.Done():
		return errors.Join(ctx.Err(), stopBus())
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(busPoll)
	defer tick.Stop()
	idle := 0
	for idle < 3 { // nothing pending three times in a row
		select {
		case <-tick.C:
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("drain interrupted: %w", ctx.Err()), stopBus())
		case <-deadline.C:
			return errors.Join(fmt.Errorf("drain: messages still pending after %v (-timeout)", timeout), stopBus())
		case err := <-done:
			return fmt.Errorf("drain: the bus stopped: %w", err)
		}
		streams, err := svc.transport.Streams(ctx, prefix)
		if err != nil {
			return errors.Join(err, stopBus())
		}
		if jetstream.Pending(streams) == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	if err := stopBus(); err != nil {
		return err
	}
	if err := recordBusUse(ctx, a.store, useDrained, namespace); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "orders bus: drained namespace %s: nothing pending on its streams (%s*)\n", namespace, prefix)
	return nil
}

// discardBus deletes the JetStream streams of namespace, or, without yes,
// prints what it would delete and refuses.
func discardBus(ctx context.Context, a *app, natsURL, namespace string, yes bool, stdout io.Writer) error {
	prefix, err := busTopicPrefix(a, namespace)
	if err != nil {
		return err
	}
	t, err := jetstream.Open(natsURL, a.logger)
	if err != nil {
		return err
	}
	defer t.Close()
	streams, err := t.Streams(ctx, prefix)
	if err != nil {
		return err
	}
	if len(streams) == 0 {
		fmt.Fprintf(stdout, "orders bus: namespace %s has no streams on NATS (%s*): nothing to discard\n", namespace, prefix)
		return nil
	}
	verb := "would delete"
	if yes {
		verb = "deleting"
	}
	fmt.Fprintf(stdout, "orders bus: %s the streams of namespace %s, with their consumers and messages:\n", verb, namespace)
	for _, s := range streams {
		fmt.Fprintf(stdout, "  stream %s: %d messages\n", s.Name, s.Messages)
		for _, c := range s.Consumers {
			fmt.Fprintf(stdout, "    consumer %s: %d pending\n", c.Name, c.Pending)
		}
	}
	if !yes {
		return errors.New("refusing to delete without -yes")
	}
	deleted, err := t.DeleteStreams(ctx, prefix)
	if err != nil {
		return err
	}
	if err := recordBusUse(ctx, a.store, useDiscarded, namespace); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "orders bus: deleted %d streams\n", len(deleted))
	return nil
}

// busTopicPrefix returns the prefix of the topics of the service's bus in
// namespace.
func busTopicPrefix(a *app, namespace string) (string, error) {
	commands, err := commandTypes()
	if err != nil {
		return "", err
	}
	b, err := bus.New(commands, a.types, bus.WithNamespace(namespace), bus.WithLogger(a.logger))
	if err != nil {
		return "", err
	}
	defer b.Close()
	return b.TopicPrefix(), nil
}
