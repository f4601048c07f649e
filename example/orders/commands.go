package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/projection/replay"
)

// exitCode carries the exit code of a command that reports its own
// failures (the replay tool).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

// replayCommand mounts the replay tool: list, status, rebuild and drop the
// application's read models.
func replayCommand(fs *flag.FlagSet) action {
	var in infra
	in.flags(fs)
	return func(ctx context.Context, stdout, stderr io.Writer, args []string) error {
		// The infrastructure flags may also follow the subcommand:
		// "orders replay rebuild --all -postgres URL".
		args, err := takeFlags(fs, args)
		if err != nil {
			return usagef("%v", err)
		}
		if err := in.requireData(); err != nil {
			return err
		}
		a, err := openApp(ctx, in, quietLogger())
		if err != nil {
			return err
		}
		defer a.Close()
		return a.replay(ctx, "orders replay", args, stdout, stderr)
	}
}

// takeFlags sets the flags of fs that stand among args (after a
// subcommand, which ends fs's own parsing), with one dash or two, "=value"
// or a value of their own, and returns the other arguments in their order.
func takeFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i:]...), nil
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || fs.Lookup(name) == nil {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return nil, fmt.Errorf("flag needs an argument: %s", a)
			}
			i++
			value = args[i]
		}
		if err := fs.Set(name, value); err != nil {
			return nil, fmt.Errorf("invalid value %q for flag -%s: %v", value, name, err)
		}
	}
	return rest, nil
}

// replayHelp prints the replay tool's commands.
func replayHelp(w io.Writer) {
	replay.New("orders replay").Run(context.Background(), []string{"-h"}, w, w)
}

// replay runs the replay tool, named name, on the application's read models.
func (a *app) replay(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	projections := make([]replay.Projection, len(a.runners))
	for i, r := range a.runners {
		projections[i] = r
	}
	if code := replay.New(name, projections...).Run(ctx, args, stdout, stderr); code != 0 {
		return exitCode(code)
	}
	return nil
}

// statusCommand prints where the event store and the read models stand.
func statusCommand(fs *flag.FlagSet) action {
	var in infra
	in.flags(fs)
	return func(ctx context.Context, stdout, stderr io.Writer, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		if err := in.requireData(); err != nil {
			return err
		}
		in.readOnly = true // status never writes, and works on a file it cannot write
		a, err := openApp(ctx, in, quietLogger())
		if err != nil {
			return err
		}
		defer a.Close()
		events, readModels := in.describe()
		fmt.Fprintf(stdout, "event store: %s\nread models: %s\n", events, readModels)
		ev, ok, err := es.Head(ctx, a.store)
		switch {
		case err != nil:
			return err
		case ok:
			fmt.Fprintf(stdout, "head of the log: %v, %s %d of %s at %s\n", ev.Position, ev.Type, ev.Revision, ev.Stream, ev.Created.Format(time.RFC3339))
		default:
			fmt.Fprintln(stdout, "head of the log: the log is empty")
		}
		fmt.Fprintln(stdout)
		return a.replay(ctx, "orders status", []string{"status"}, stdout, stderr)
	}
}

// seedCommand places n random orders, and moves some of them along.
func seedCommand(fs *flag.FlagSet) action {
	var in infra
	in.flags(fs)
	n := fs.Int("n", 100, "how many orders to place")
	seed := fs.Uint64("seed", 1, "the random seed: the same seed places the same orders")
	return func(ctx context.Context, stdout, stderr io.Writer, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *n < 1 {
			return usagef("-n must be positive, not %d", *n)
		}
		a, err := openApp(ctx, in, quietLogger())
		if err != nil {
			return err
		}
		defer a.Close()
		placed, events, err := seedOrders(ctx, a, *n, *seed)
		fmt.Fprintf(stdout, "placed %d orders (%d events)\n", placed, events)
		return err
	}
}

var (
	seedCustomers = []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	seedProducts  = []struct {
		id    string
		price order.Money
	}{{"keyboard", 4990}, {"mouse", 1990}, {"monitor", 18900}, {"usb-cable", 750}, {"headset", 5900}, {"webcam", 4500}, {"desk-lamp", 2900}}
)

// seedOrders places n orders with IDs that do not exist yet, then confirms,
// ships or cancels some of them, as a shop would. It returns how many orders
// it placed and how many events it appended.
func seedOrders(ctx context.Context, a *app, n int, seed uint64) (placed, events int, err error) {
	rng := rand.New(rand.NewPCG(seed, 0xE7E27F01D))
	run := time.Now().UTC().Format("20060102T150405")
	for i := range n {
		id := fmt.Sprintf("s%s-%d", run, i+1)
		var items []order.Item
		for range 1 + rng.IntN(3) {
			p := seedProducts[rng.IntN(len(seedProducts))]
			items = append(items, order.Item{ProductID: p.id, Quantity: 1 + rng.IntN(3), UnitPrice: p.price})
		}
		at := time.Now().UTC()
		cmd := order.PlaceOrder{OrderID: id, CustomerID: seedCustomers[rng.IntN(len(seedCustomers))], Items: items, PlacedAt: at}
		if _, err := a.orders.Create(ctx, id, order.Place(cmd)); err != nil {
			return placed, events, err
		}
		placed, events = placed+1, events+1
		var next []decider
		switch r := rng.IntN(10); {
		case r < 5:
			next = append(next, order.Confirm(order.ConfirmOrder{OrderID: id, ConfirmedAt: at}))
			if r < 3 {
				next = append(next, order.Ship(order.ShipOrder{OrderID: id, TrackingNumber: fmt.Sprintf("1Z-%06d", rng.IntN(1_000_000)), ShippedAt: at}))
			}
		case r < 7:
			next = append(next, order.Cancel(order.CancelOrder{OrderID: id, Reason: "changed my mind", CancelledAt: at}))
		}
		for _, step := range next {
			if _, err := a.orders.Update(ctx, id, step); err != nil {
				return placed, events, err
			}
			events++
		}
	}
	return placed, events, nil
}
