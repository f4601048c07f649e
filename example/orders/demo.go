package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/example/orders/order"
)

// demoStart is where the demo's clock starts. Each command happens a minute
// after the one before, so that the demo prints the same on every run.
var demoStart = time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)

// decider is the type of the order deciders, for short.
type decider = aggregate.Decider[order.Order, order.Event]

// demo is the state of a running demo.
type demo struct {
	out    *errWriter
	store  *gatedStore
	orders *aggregate.Repository[order.Order, order.Event]
	now    time.Time // the fixed clock
	seq    int       // numbers the requests
	base   int       // order IDs are base+1, base+2, …
	app    *app      // for the read side
}

// id returns the ID of the demo's order n: 1001 for n = 1 on the first run.
func (d *demo) id(n int) string { return strconv.Itoa(d.base + n) }

// firstFreeBase returns the first multiple of 1000 whose order 1 does not
// exist yet, so that the demo can run again on a store that keeps its data:
// 1000 on an empty store, then 2000, 3000, …
func firstFreeBase(ctx context.Context, orders *aggregate.Repository[order.Order, order.Event]) (int, error) {
	for base := 1000; ; base += 1000 {
		_, _, err := orders.Load(ctx, strconv.Itoa(base+1))
		if errors.Is(err, aggregate.ErrNotFound) {
			return base, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// runDemo tells a scripted story of a shop's orders on store and prints it to
// w: orders placed, confirmed, shipped and cancelled; commands the domain
// rejects; two writers that conflict, and the repository's retry; the final
// state and the metadata stored with the events. It uses a fixed clock and
// order IDs from 1001, so it prints the same on every run with an empty
// store; on a store that keeps its data, a second run uses 2001, and so on.
func runDemo(ctx context.Context, w io.Writer, a *app) error {
	store := a.store
	types := a.types
	gated := newGatedStore(store)
	orders, err := aggregate.New(gated, types, order.Definition(), aggregate.WithRetry(3, time.Millisecond))
	if err != nil {
		return err
	}
	base, err := firstFreeBase(ctx, orders)
	if err != nil {
		return err
	}
	d := &demo{out: &errWriter{w: w}, store: gated, orders: orders, now: demoStart, base: base, app: a}
	d.printf("The orders of a shop, event-sourced with eventfold on a %T.\n", unwrapped(store))
	for _, step := range []func(context.Context) error{d.place, d.fulfil, d.reject, d.race, d.report, d.readSide} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return d.out.err
}

// place places orders for two customers.
func (d *demo) place(ctx context.Context) error {
	d.printf("\n1. Customers place orders\n")
	for _, cmd := range []order.PlaceOrder{
		{OrderID: d.id(1), CustomerID: "alice", Items: []order.Item{
			{ProductID: "keyboard", Quantity: 1, UnitPrice: 4990},
			{ProductID: "mouse", Quantity: 2, UnitPrice: 1990},
		}},
		{OrderID: d.id(2), CustomerID: "bob", Items: []order.Item{
			{ProductID: "monitor", Quantity: 1, UnitPrice: 18900},
		}},
		{OrderID: d.id(3), CustomerID: "alice", Items: []order.Item{
			{ProductID: "usb-cable", Quantity: 3, UnitPrice: 750},
		}},
		{OrderID: d.id(4), CustomerID: "bob", Items: []order.Item{
			{ProductID: "headset", Quantity: 1, UnitPrice: 5900},
			{ProductID: "webcam", Quantity: 1, UnitPrice: 4500},
		}},
	} {
		cmd.PlacedAt = d.tick()
		res, err := d.orders.Create(d.request(ctx, "PlaceOrder"), cmd.OrderID, order.Place(cmd))
		if err != nil {
			return err
		}
		o := res.State
		d.printf("   %s placed %s: %s = %v (version %d)\n", o.CustomerID, o.ID, describeItems(o.Items), o.Total, res.Version)
	}
	return nil
}

// fulfil confirms, ships and cancels orders.
func (d *demo) fulfil(ctx context.Context) error {
	d.printf("\n2. The shop confirms and ships; a customer cancels\n")
	steps := []struct {
		id     string
		name   string // the command's name
		decide decider
	}{
		{d.id(1), "ConfirmOrder", order.Confirm(order.ConfirmOrder{OrderID: d.id(1), ConfirmedAt: d.tick()})},
		{d.id(1), "ShipOrder", order.Ship(order.ShipOrder{OrderID: d.id(1), TrackingNumber: "1Z-0001-DEMO", ShippedAt: d.tick()})},
		{d.id(2), "CancelOrder", order.Cancel(order.CancelOrder{OrderID: d.id(2), Reason: "found it cheaper elsewhere", CancelledAt: d.tick()})},
		{d.id(4), "ConfirmOrder", order.Confirm(order.ConfirmOrder{OrderID: d.id(4), ConfirmedAt: d.tick()})},
	}
	for _, s := range steps {
		res, err := d.orders.Update(d.request(ctx, s.name), s.id, s.decide)
		if err != nil {
			return err
		}
		d.printf("   %s %s (version %d)\n", s.id, describeChange(res.State), res.Version)
	}
	return nil
}

// reject sends commands that break the domain's rules.
func (d *demo) reject(ctx context.Context) error {
	d.printf("\n3. Commands that break a rule are rejected, and nothing is stored\n")
	attempts := []struct {
		what string
		name string // the command's name
		// send runs the command through the repository.
		send func(ctx context.Context) error
		// want is the error the command must fail with; its name is printed.
		want     error
		wantName string
	}{
		{
			what: fmt.Sprintf("ship %s, which is still pending", d.id(3)), name: "ShipOrder",
			send: d.update(d.id(3), order.Ship(order.ShipOrder{OrderID: d.id(3), TrackingNumber: "1Z-0003-DEMO", ShippedAt: d.tick()})),
			want: order.ErrInvalidTransition, wantName: "order.ErrInvalidTransition",
		},
		{
			what: fmt.Sprintf("place %s without items", d.id(5)), name: "PlaceOrder",
			send: d.create(d.id(5), order.Place(order.PlaceOrder{OrderID: d.id(5), CustomerID: "bob", PlacedAt: d.tick()})),
			want: order.ErrEmptyOrder, wantName: "order.ErrEmptyOrder",
		},
		{
			what: fmt.Sprintf("place %s with a quantity of 0", d.id(6)), name: "PlaceOrder",
			send: d.create(d.id(6), order.Place(order.PlaceOrder{OrderID: d.id(6), CustomerID: "alice", PlacedAt: d.tick(),
				Items: []order.Item{{ProductID: "desk-lamp", Quantity: 0, UnitPrice: 2900}}})),
			want: order.ErrInvalidQuantity, wantName: "order.ErrInvalidQuantity",
		},
		{
			what: fmt.Sprintf("place %s again", d.id(1)), name: "PlaceOrder",
			send: d.create(d.id(1), order.Place(order.PlaceOrder{OrderID: d.id(1), CustomerID: "alice", PlacedAt: d.tick(),
				Items: []order.Item{{ProductID: "keyboard", Quantity: 1, UnitPrice: 4990}}})),
			want: aggregate.ErrAlreadyExists, wantName: "aggregate.ErrAlreadyExists",
		},
	}
	for _, a := range attempts {
		err := a.send(d.request(ctx, a.name))
		if !errors.Is(err, a.want) {
			return fmt.Errorf("%s: got error %v, want %s", a.what, err, a.wantName)
		}
		d.printf("   %s\n      → %s: %v\n", a.what, a.wantName, err)
	}
	return nil
}

func (d *demo) create(id string, decide decider) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := d.orders.Create(ctx, id, decide)
		return err
	}
}

func (d *demo) update(id string, decide decider) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := d.orders.Update(ctx, id, decide)
		return err
	}
}

// race stages two conflicts between a customer who cancels and the shop
// that acts on the same order at the same moment. Both times, the cancel
// loses the race to the store and is retried by the repository: once it
// still succeeds, once the order has moved on and the retry rejects it.
func (d *demo) race(ctx context.Context) error {
	d.printf("\n4. Two writers change the same order at once\n")
	before := d.store.conflictCount()

	// Each time, the customer sends the cancel first (an earlier request and
	// time) but appends second: a stream orders events by commit, not by the
	// times the commands carry.
	d.printf("   alice cancels %s while the shop confirms it:\n", d.id(3))
	cancel := order.Cancel(order.CancelOrder{OrderID: d.id(3), Reason: "ordered twice by mistake", CancelledAt: d.tick()})
	confirm := order.Confirm(order.ConfirmOrder{OrderID: d.id(3), ConfirmedAt: d.tick()})
	if err := d.conflict(ctx, d.id(3), cancel, "ConfirmOrder", confirm); err != nil {
		return err
	}

	d.printf("   bob cancels %s while the shop ships it:\n", d.id(4))
	cancel = order.Cancel(order.CancelOrder{OrderID: d.id(4), Reason: "no longer needed", CancelledAt: d.tick()})
	ship := order.Ship(order.ShipOrder{OrderID: d.id(4), TrackingNumber: "1Z-0004-DEMO", ShippedAt: d.tick()})
	if err := d.conflict(ctx, d.id(4), cancel, "ShipOrder", ship); err != nil {
		return err
	}

	d.printf("   The store reported %d conflicts; the repository retried each, deciding again on the new state.\n", d.store.conflictCount()-before)
	return nil
}

// conflict makes a cancel of order id conflict with the shop's command, and
// prints what happens. The cancel runs in its own goroutine and is held by
// the store just before its append; the shop's command runs to the end; then
// the cancel is released, its append fails with a wrong expected version, and
// the repository loads the order again and decides the cancel again.
func (d *demo) conflict(ctx context.Context, id string, cancel decider, shopName string, shop decider) error {
	stream := d.orders.Definition().Stream(id)
	before := d.store.conflictCount()
	gate := d.store.holdNextAppend(stream)
	defer d.store.disarm(stream)

	// seen records the status of each state the cancel is decided against:
	// one per attempt.
	var seen []order.Status
	observed := func(o order.Order) ([]order.Event, error) {
		seen = append(seen, o.Status)
		return cancel(o)
	}
	cancelCtx, shopCtx := d.request(ctx, "CancelOrder"), d.request(ctx, shopName)
	var (
		cancelRes aggregate.Result[order.Order, order.Event]
		cancelErr error
		done      = make(chan struct{})
	)
	go func() {
		defer close(done)
		cancelRes, cancelErr = d.orders.Update(cancelCtx, id, observed)
	}()

	var expected es.ExpectedRevision
	select {
	case expected = <-gate.held:
	case <-done:
		return fmt.Errorf("cancel %s finished before its append: %w", id, cancelErr)
	}
	d.printf("      the cancel loaded version %v (%s) and is held just before its append\n", expected, seen[0])

	shopRes, shopErr := d.orders.Update(shopCtx, id, shop)
	close(gate.release)
	<-done
	if shopErr != nil {
		return shopErr
	}
	d.printf("      the shop's %s appended first: version %d (%s)\n", shopName, shopRes.Version, shopRes.State.Status)

	for _, c := range d.store.conflictsSince(before) {
		d.printf("      the cancel is released; its append expected version %v, but %s is at %v: conflict\n", c.Expected, c.Stream, c.Actual)
	}
	if cancelErr != nil && !errors.Is(cancelErr, order.ErrInvalidTransition) {
		return cancelErr
	}
	if len(seen) < 2 {
		return fmt.Errorf("cancel %s was not retried", id)
	}
	d.printf("      the repository retried: it loaded %s again (%s) and decided the cancel again\n", id, seen[len(seen)-1])
	if cancelErr != nil {
		d.printf("      → the cancel is rejected: %v\n", cancelErr)
	} else {
		d.printf("      → the cancel succeeds: version %d (%s)\n", cancelRes.Version, cancelRes.State.Status)
	}
	return nil
}

// report prints the state of every order, and the events of one order with
// their metadata.
func (d *demo) report(ctx context.Context) error {
	d.printf("\n5. Where the orders stand, loaded from their events\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "   ORDER\tCUSTOMER\tSTATUS\tITEMS\tTOTAL\tDETAIL")
	for _, id := range []string{d.id(1), d.id(2), d.id(3), d.id(4)} {
		o, version, err := d.orders.Load(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "   %s\t%s\t%s\t%d\t%v\t%s\n", o.ID, o.CustomerID, o.Status, len(o.Items), o.Total, describeDetail(o, version))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	id := d.id(3)
	stream := d.orders.Definition().Stream(id)
	d.printf("\n   The events of stream %s. Each command's context carried a correlation ID\n", stream)
	d.printf("   (the request) and a causation ID (the command), stored in each event's metadata:\n")
	tw = tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "   REVISION\tTYPE\tCORRELATION ID\tCAUSATION ID")
	for ev, err := range d.store.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
		if err != nil {
			return err
		}
		md, err := es.ParseMetadata(ev.Metadata)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "   %d\t%s\t%s\t%s\n", ev.Revision, ev.Type, md.CorrelationID, md.CausationID)
	}
	return tw.Flush()
}

// readSide brings the read models up to date and queries them.
func (d *demo) readSide(ctx context.Context) error {
	d.printf("\n6. The read side: projections fold the log into SQL tables\n")
	for _, r := range d.app.runners {
		st, err := r.Status(ctx)
		if err != nil {
			return err
		}
		if err := r.CatchUp(ctx); err != nil {
			return err
		}
		after, err := r.Status(ctx)
		if err != nil {
			return err
		}
		d.printf("   %s caught up: %d events applied, checkpoint %v (was %v)\n", r.Name(), after.Events, after.Checkpoint, st.Checkpoint)
	}

	d.printf("\n   alice's order history (order-summaries):\n")
	summaries, err := d.app.queries.CustomerOrders(ctx, "alice")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "   ORDER\tPLACED\tSTATUS\tITEMS\tTOTAL")
	for _, s := range summaries {
		if n, err := strconv.Atoi(s.OrderID); err == nil && n > d.base && n < d.base+1000 {
			fmt.Fprintf(tw, "   %s\t%s\t%s\t%d\t%v\n", s.OrderID, s.PlacedAt.Format(clock), s.Status, s.ItemCount, s.Total)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	id := d.id(1)
	detail, err := d.app.queries.Order(ctx, id)
	if err != nil {
		return err
	}
	d.printf("\n   order %s (order-details): %s, subtotal %v\n", id, detail.Status, detail.Subtotal)
	for _, l := range detail.Items {
		d.printf("      %d × %s @ %v = %v\n", l.Quantity, l.ProductID, l.UnitPrice, l.LineTotal)
	}
	for _, s := range detail.Timeline {
		line := fmt.Sprintf("      %s  %s", s.At.Format(clock), s.Status)
		if s.Detail != "" {
			line += "  (" + s.Detail + ")"
		}
		d.printf("%s\n", line)
	}
	d.printf("\n   Throw a read model away and rebuild it at any time: orders replay rebuild --all\n")
	return nil
}

// tick advances the demo's clock by a minute and returns the time.
func (d *demo) tick() time.Time {
	d.now = d.now.Add(time.Minute)
	return d.now
}

// request returns the context of a new request that sends the command
// named name: its correlation ID names the request, and its causation ID the
// command. The repository stores both in the metadata of the events the
// command causes.
func (d *demo) request(ctx context.Context, name string) context.Context {
	d.seq++
	ctx = es.WithCorrelationID(ctx, fmt.Sprintf("req-%02d", d.seq))
	return es.WithCausationID(ctx, fmt.Sprintf("%s-%02d", name, d.seq))
}

func (d *demo) printf(format string, args ...any) {
	fmt.Fprintf(d.out, format, args...)
}

// clock is the layout of the times the demo prints.
const clock = "15:04"

// describeItems returns "1 × keyboard @ 49.90 + 2 × mouse @ 19.90".
func describeItems(items []order.Item) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = fmt.Sprintf("%d × %s @ %v", it.Quantity, it.ProductID, it.UnitPrice)
	}
	return strings.Join(parts, " + ")
}

// describeChange says what the last event did to o.
func describeChange(o order.Order) string {
	switch o.Status {
	case order.StatusConfirmed:
		return "confirmed"
	case order.StatusShipped:
		return "shipped with tracking number " + o.TrackingNumber
	case order.StatusCancelled:
		return fmt.Sprintf("cancelled: %q", o.CancelReason)
	}
	return string(o.Status)
}

// describeDetail returns the last change of o, for the table of orders.
func describeDetail(o order.Order, version uint64) string {
	var detail string
	switch o.Status {
	case order.StatusPending:
		detail = "placed " + o.PlacedAt.Format(clock)
	case order.StatusConfirmed:
		detail = "confirmed " + o.ConfirmedAt.Format(clock)
	case order.StatusShipped:
		detail = fmt.Sprintf("shipped %s, tracking number %s", o.ShippedAt.Format(clock), o.TrackingNumber)
	case order.StatusCancelled:
		detail = fmt.Sprintf("cancelled %s: %q", o.CancelledAt.Format(clock), o.CancelReason)
	}
	return fmt.Sprintf("%s (version %d)", detail, version)
}

// errWriter is an io.Writer that remembers its first error and then writes
// nothing, so that the demo can print freely and check once at the end.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// unwrapped returns the store that s wraps if s is the telemetry's
// wrapper (es/esotel), for people reading which store runs.
func unwrapped(s es.Store) es.Store {
	if w, ok := s.(*esotel.Store); ok {
		return w.Unwrap()
	}
	return s
}
