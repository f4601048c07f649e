package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/jetstream"
	"github.com/eventfold/eventfold/es"
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
	app    *app
	bus    *bus.Bus
	relay  *projection.Runner[projection.NoTx]
	now    func() time.Time
	logger *slog.Logger

	notified atomic.Int64 // shipping notifications sent
	closers  []func() error
}

// serviceConfig configures a service.
type serviceConfig struct {
	nats        string // NATS URL: the bus on JetStream instead of in-process channels
	topicPrefix string // the bus's topics start with it; "" for the bus's default
	autoConfirm bool   // run the stock check
}

// newService builds the service on a.
func newService(ctx context.Context, a *app, cfg serviceConfig) (*service, error) {
	s := &service{app: a, now: time.Now, logger: a.logger}
	commands, err := commandTypes()
	if err != nil {
		return nil, err
	}
	opts := []bus.Option{
		bus.WithLogger(a.logger),
		bus.WithErrors(order.ErrInvalidCommand, order.ErrInvalidTransition, aggregate.ErrNotFound, aggregate.ErrAlreadyExists),
	}
	if cfg.topicPrefix != "" {
		opts = append(opts, bus.WithTopicPrefix(cfg.topicPrefix))
	}
	if cfg.nats != "" {
		t, err := jetstream.New(cfg.nats, a.logger)
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
	processed, err := bus.NewSQLProcessed(ctx, a.db, "orders_processed_events")
	if err != nil {
		return nil, err
	}
	if cfg.autoConfirm {
		errs = append(errs, bus.HandleEvent(s.bus, "stock-check", bus.Idempotent(processed, "stock-check", s.stockCheck)))
	}
	errs = append(errs, bus.HandleEvent(s.bus, "notifications", bus.Idempotent(processed, "notifications", s.notifyShipped)))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// The relay: a checkpointed projection that publishes what the store
	// committed. Its checkpoint lives in the store, so that it holds no
	// database transaction while it publishes.
	relay := bus.NewRelay(s.bus)
	s.relay, err = projection.NewRunner(a.store, projection.NewStreamCheckpoints(a.store), nil, projection.Projection[projection.NoTx]{
		Name:       "relay",
		Categories: []string{order.Definition().Category},
		Handle: func(ctx context.Context, _ projection.NoTx, b projection.Batch) error {
			return relay.Publish(ctx, b.Recorded()...)
		},
	}, projection.WithLogger(a.logger), projection.WithBatch(100, 20*time.Millisecond))
	if err != nil {
		return nil, err
	}
	return s, nil
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

// run runs the bus, the relay and the read models until ctx is done.
func (s *service) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	start := func(name string, run func(context.Context) error) {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		})
	}
	start("bus", s.bus.Run)
	start("relay", s.relay.Run)
	for _, r := range s.app.runners {
		start(r.Name(), r.Run)
	}
	<-ctx.Done()
	wg.Wait()
	var errs []error
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		errs = append(errs, err)
	}
	for _, c := range s.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}
