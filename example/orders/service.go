package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/esdbbus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/bus/sqlbus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/eventstoredb"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/projection"
)

// outcome is what a command handler answers: where the order stands after
// the command, and the position of its events, to wait for on the read
// models.
type outcome struct {
	OrderID  string       `json:"orderId"`
	Version  uint64       `json:"version"`
	Position es.Position  `json:"position"`
	Status   order.Status `json:"status"`
}

// commandTypes is the registry of the commands, with the names they travel
// under.
func commandTypes() (*es.Registry, error) {
	return es.NewRegistry(
		es.Type[order.PlaceOrder]("PlaceOrder"),
		es.Type[order.ConfirmOrder]("ConfirmOrder"),
		es.Type[order.ShipOrder]("ShipOrder"),
		es.Type[order.CancelOrder]("CancelOrder"),
	)
}

// catalog is what the shop stocks: the stock check confirms the orders of
// these products by itself.
var catalog = func() map[string]bool {
	c := make(map[string]bool, len(seedProducts))
	for _, p := range seedProducts {
		c[p.id] = true
	}
	return c
}()

// service is the orders service: commands and events on a bus, the relay
// that feeds the bus from the store, a process manager, and the read
// models kept up to date.
type service struct {
	// metrics, if set, serves the metrics on GET /metrics.
	metrics   http.Handler
	app       *app
	bus       *bus.Bus
	transport *jetstream.Transport // nil unless the bus is on NATS
	// relay feeds the bus from the store; nil on EventStoreDB's bus
	// (-bus-esdb), whose event handlers read the store directly.
	relay  *projection.Runner[projection.NoTx]
	now    func() time.Time
	logger *slog.Logger

	notified atomic.Int64 // shipping notifications sent
	closers  []func() error
	stopping atomic.Bool   // the service is shutting down: not ready
	stopped  chan struct{} // closed once run or serve has stopped the service

	// beforeConfirm, if set, is called by the stock check before it
	// confirms an order (tests use it to hold an event handler under way).
	beforeConfirm func(ctx context.Context)
}

// serviceConfig configures a service.
type serviceConfig struct {
	nats string // NATS URL: the bus on JetStream instead of in-process channels
	// busESDB carries the bus on EventStoreDB (the app's store), through
	// persistent subscriptions, without a relay.
	busESDB bool
	// ackWait is how long NATS waits for a command's or an event's
	// acknowledgement before it delivers it again (jetstream.WithAckWait);
	// the transport's default if 0.
	ackWait     time.Duration
	topicPrefix string // the bus's topics start with it; "" for the bus's default
	namespace   string // the bus's namespace (bus.WithNamespace); "" for none
	autoConfirm bool   // run the stock check
}

// newService builds the service on a.
func newService(ctx context.Context, a *app, cfg serviceConfig) (*service, error) {
	s := &service{app: a, now: time.Now, logger: a.logger, stopped: make(chan struct{})}
	commands, err := commandTypes()
	if err != nil {
		return nil, err
	}
	opts := []bus.Option{
		bus.WithLogger(a.logger),
		// es.ErrUnavailable too (eventstoredb.ErrUnavailable is the same
		// error): a store that is away (EventStoreDB, PostgreSQL) is
		// answered 503 at once, not retried; the store reconnects by
		// itself.
		bus.WithErrors(order.ErrInvalidCommand, order.ErrInvalidTransition, aggregate.ErrNotFound, aggregate.ErrAlreadyExists,
			es.ErrUnavailable),
	}
	if cfg.topicPrefix != "" {
		opts = append(opts, bus.WithTopicPrefix(cfg.topicPrefix))
	}
	if cfg.namespace != "" {
		opts = append(opts, bus.WithNamespace(cfg.namespace))
	}
	switch {
	case cfg.nats != "" && cfg.busESDB:
		return nil, errors.New("the bus runs on NATS or on EventStoreDB, not both")
	case cfg.nats != "":
		var jsOpts []jetstream.Option
		if cfg.ackWait > 0 {
			jsOpts = append(jsOpts, jetstream.WithAckWait(cfg.ackWait))
		}
		t, err := jetstream.Open(cfg.nats, a.logger, jsOpts...)
		if err != nil {
			return nil, err
		}
		s.closers, s.transport = append(s.closers, t.Close), t
		opts = append(opts, t.Options()...)
	case cfg.busESDB:
		t, err := esdbTransport(a, cfg)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, t.Close)
		opts = append(opts, t.Options()...)
	}
	if s.bus, err = bus.New(commands, a.types, opts...); err != nil {
		return nil, err
	}

	// One handler per command: decide with the repository, answer the outcome.
	errs := []error{
		bus.HandleRequest(s.bus, func(ctx context.Context, cmd order.PlaceOrder) (outcome, error) {
			return answer(a.orders.Create(ctx, cmd.OrderID, order.Place(cmd)))
		}),
		bus.HandleRequest(s.bus, func(ctx context.Context, cmd order.ConfirmOrder) (outcome, error) {
			return answer(a.orders.Update(ctx, cmd.OrderID, order.Confirm(cmd)))
		}),
		bus.HandleRequest(s.bus, func(ctx context.Context, cmd order.ShipOrder) (outcome, error) {
			return answer(a.orders.Update(ctx, cmd.OrderID, order.Ship(cmd)))
		}),
		bus.HandleRequest(s.bus, func(ctx context.Context, cmd order.CancelOrder) (outcome, error) {
			return answer(a.orders.Update(ctx, cmd.OrderID, order.Cancel(cmd)))
		}),
	}

	// The process manager: events in, commands out. Delivery is
	// at-least-once, so each handler skips the events it has seen.
	processed, err := sqlbus.NewProcessed(ctx, a.db, "orders_processed_events")
	if err != nil {
		return nil, err
	}
	if cfg.autoConfirm {
		errs = append(errs, bus.HandleEvent(s.bus, "stock-check", s.stockCheck, bus.WithIdempotency(processed)))
	}
	errs = append(errs, bus.HandleEvent(s.bus, "notifications", s.notifyShipped, bus.WithIdempotency(processed)))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	if !cfg.busESDB {
		if s.relay, err = newRelay(a, s.bus); err != nil {
			return nil, err
		}
	}
	horizon := s.horizon
	a.horizon.Store(&horizon)
	return s, nil
}

// newRelay returns the relay: a checkpointed projection that publishes
// what the store committed to b. Its checkpoint lives in the store, so
// that it holds no database transaction while it publishes, under a lease:
// one replica relays, another takes over when it dies.
func newRelay(a *app, b *bus.Bus) (*projection.Runner[projection.NoTx], error) {
	opts := []projection.StreamOption{projection.WithStreamLogger(a.logger)}
	if a.holder != "" {
		opts = append(opts, projection.WithStreamLeaseHolder(a.holder))
	}
	if a.leaseTTL > 0 {
		opts = append(opts, projection.WithStreamLeaseTTL(a.leaseTTL))
	}
	relayed, err := projection.NewStreamCheckpoints(a.store, opts...)
	if err != nil {
		return nil, err
	}
	return projection.NewRunner(a.store, relayed, nil, projection.Relay(b.Publish, order.Definition().Category),
		projection.WithLogger(a.logger), projection.WithBatch(100, 20*time.Millisecond), restart)
}

// esdbTransport returns the transport of a bus on EventStoreDB, a.esdb
// (serve -bus-esdb): commands and replies are appended to streams of their
// own, and the events topic reads the order streams from `$all`, so that
// no relay runs. Each consumer is a persistent subscription group, shared
// by the replicas; the groups are pinned by stream, so one order's events
// reach one replica, in order, while the replicas stay the same.
func esdbTransport(a *app, cfg serviceConfig) (*esdbbus.Transport, error) {
	if a.esdb == nil {
		return nil, errors.New("the bus on EventStoreDB needs the events there (-esdb)")
	}
	return esdbbus.New(a.esdb, esdbbus.WithLogger(a.logger),
		esdbbus.WithSource(eventsTopic(cfg), esdbbus.StreamPrefixes(order.Definition().Category+"-")),
		esdbbus.WithGroupSettings(eventstoredb.GroupSettings{Strategy: eventstoredb.Pinned}))
}

// eventsTopic returns the topic of the events of a bus of cfg, as
// bus.New names it: "<prefix><namespace>-events".
func eventsTopic(cfg serviceConfig) string {
	prefix := cfg.topicPrefix
	if prefix == "" {
		prefix = "eventfold-"
	}
	if cfg.namespace != "" {
		prefix += cfg.namespace + "-"
	}
	return prefix + "events"
}

func answer(res aggregate.Result[order.Order, order.Event], err error) (outcome, error) {
	if err != nil {
		return outcome{}, err
	}
	return outcome{OrderID: res.State.ID, Version: res.Version, Position: res.Position, Status: res.State.Status}, nil
}

// stockCheck confirms an order whose products are all in the catalog.
func (s *service) stockCheck(ctx context.Context, e order.Placed) error {
	for _, it := range e.Items {
		if !catalog[it.ProductID] {
			s.logger.InfoContext(ctx, "stock check: not in stock; the order waits", "order", e.OrderID, "product", it.ProductID)
			return nil
		}
	}
	if s.beforeConfirm != nil {
		s.beforeConfirm(ctx)
	}
	_, err := bus.Request[outcome](ctx, s.bus, order.ConfirmOrder{OrderID: e.OrderID, ConfirmedAt: s.now()})
	if errors.Is(err, order.ErrInvalidTransition) {
		return nil // confirmed or cancelled by someone else meanwhile
	}
	return err
}

// notifyShipped tells the customer that the order is on its way.
func (s *service) notifyShipped(ctx context.Context, e order.Shipped) error {
	s.notified.Add(1)
	s.logger.InfoContext(ctx, "notification: order shipped", "order", e.OrderID, "tracking", e.TrackingNumber)
	return nil
}

// runner is a projection runner, whatever its transactions.
type runner interface {
	Name() string
	Status(ctx context.Context) (projection.Status, error)
}

// horizon returns the lowest checkpoint of the service's runners: the
// events below it have been consumed by all of them.
func (s *service) horizon(ctx context.Context) (es.Position, error) {
	low := es.End
	for _, r := range s.runners() {
		st, err := r.Status(ctx)
		if err != nil {
			return es.Start, err
		}
		if st.Checkpoint.Compare(low) < 0 {
			low = st.Checkpoint
		}
	}
	return low, nil
}

// runners returns the service's runners: the relay (if it runs), then the
// read models.
func (s *service) runners() []runner {
	var rs []runner
	if s.relay != nil {
		rs = append(rs, s.relay)
	}
	for _, m := range s.app.runners {
		rs = append(rs, m)
	}
	return rs
}

// run runs the service until ctx is done or a part of it fails, then stops
// it in order (see [running.stop]) and closes its transport.
func (s *service) run(ctx context.Context) error {
	defer close(s.stopped)
	r := s.start(ctx)
	select {
	case <-ctx.Done():
	case <-r.failed:
	}
	s.stopping.Store(true)
	err := r.stop(context.WithoutCancel(ctx))
	r.wait()
	return errors.Join(err, s.close())
}

// close closes what the service opened (the NATS connection): the store
// and the read side belong to the app.
func (s *service) close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// running is a started service: its parts run in three stages, each under
// a context of its own, so that they stop in order.
type running struct {
	relay, bus, readModels *stage

	failed chan struct{} // closed when a part fails
	once   sync.Once
	cause  error
}

// stage is parts of the service that start and stop together.
type stage struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs the bus, the relay and the read models. They keep ctx's values
// but not its end: they run until [running.stop].
func (s *service) start(ctx context.Context) *running {
	base := context.WithoutCancel(ctx)
	r := &running{failed: make(chan struct{})}
	r.bus = r.stage(base, "the bus", map[string]func(context.Context) error{"bus": s.bus.Run})
	relay := map[string]func(context.Context) error{}
	if s.relay != nil {
		relay[s.relay.Name()] = s.relay.Run
	}
	r.relay = r.stage(base, "the relay", relay)
	models := make(map[string]func(context.Context) error, len(s.app.runners))
	for _, m := range s.app.runners {
		models[m.Name()] = m.Run
	}
	r.readModels = r.stage(base, "the read models", models)
	return r
}

func (r *running) stage(base context.Context, name string, runs map[string]func(context.Context) error) *stage {
	ctx, cancel := context.WithCancel(base)
	st := &stage{name: name, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	for part, run := range runs {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				r.fail(fmt.Errorf("%s: %w", part, err))
			}
		})
	}
	go func() {
		wg.Wait()
		close(st.done)
	}()
	return st
}

// stages returns the stages in the order they stop.
func (r *running) stages() []*stage { return []*stage{r.relay, r.bus, r.readModels} }

// wait waits until every stage has stopped.
func (r *running) wait() {
	for _, st := range r.stages() {
		<-st.done
	}
}

func (r *running) fail(err error) {
	r.once.Do(func() {
		r.cause = err
		close(r.failed)
	})
}

// stop stops the service's parts in order, each once the one before has
// stopped, and returns why a part failed, if one did:
//
//  1. the relay, which commits its last batch: on the in-process transport
//     a batch is published once every event handler has handled it, so
//     the handlers under way (the stock check, which sends a command) end
//     with their events handled before the relay's checkpoint passes them;
//  2. the bus: no handler is then under way, and no command is coming;
//  3. the read models, which commit their last batches: until then, the
//     requests that waited for them were answered.
//
// If a stage has not stopped when ctx ends, stop tells the stages after it
// to stop as well, out of order, and returns at once an error that wraps
// ctx's; [running.wait] waits until they have all stopped.
func (r *running) stop(ctx context.Context) error {
	stages := r.stages()
	for i, st := range stages {
		st.cancel()
		select {
		case <-st.done:
		case <-ctx.Done():
			for _, later := range stages[i+1:] {
				later.cancel()
			}
			return fmt.Errorf("%s did not stop: %w", st.name, context.Cause(ctx))
		}
	}
	select {
	case <-r.failed:
		return r.cause
	default:
		return nil
	}
}
