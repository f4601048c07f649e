package replay

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
)

// listCommand is "list": the projections' names and versions.
func (t *Tool) listCommand(fs *flag.FlagSet) action {
	return func(ctx context.Context, out output, args []string) error {
		if len(args) > 0 {
			return usagef("unexpected arguments %q", args)
		}
		tw := tabwriter.NewWriter(out.stdout, 0, 0, 2, ' ', 0)
		var errs []error
		for _, p := range t.projections {
			st, err := p.Status(ctx)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
				continue
			}
			fmt.Fprintf(tw, "%s\tv%d\n", p.Name(), st.Version)
		}
		return errors.Join(append(errs, tw.Flush())...)
	}
}

// statusJSON is one projection in the output of "status --json".
type statusJSON struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	State   string `json:"state"`
	// Holder names the process that holds the projection's lease, when
	// it runs elsewhere or this one waits for it.
	Holder     string      `json:"holder,omitempty"`
	Checkpoint es.Position `json:"checkpoint"`
	Head       es.Position `json:"head"`
	Lag        lagJSON     `json:"lag"`
	LastEvent  *time.Time  `json:"lastEvent,omitempty"`
	// BeyondHead says that the checkpoint is past the end of the log.
	BeyondHead bool   `json:"beyondHead,omitempty"`
	Error      string `json:"error,omitempty"`
	// Partitions are the partitions of a partitioned projection: where
	// each runs and how far it is.
	Partitions []partJSON `json:"partitions,omitempty"`
}

// partJSON is one partition of a projection in the output of "status
// --json".
type partJSON struct {
	Partition  int         `json:"partition"`
	State      string      `json:"state"`
	Holder     string      `json:"holder,omitempty"`
	Checkpoint es.Position `json:"checkpoint"`
}

type lagJSON struct {
	Events  int     `json:"events"`
	AtLeast bool    `json:"atLeast,omitempty"`
	Seconds float64 `json:"seconds"`
}

// statusCommand is "status [NAME...]".
func (t *Tool) statusCommand(fs *flag.FlagSet) action {
	asJSON := fs.Bool("json", false, "print JSON: an array with an object per projection")
	return func(ctx context.Context, out output, args []string) error {
		ps, err := t.selected(args)
		if err != nil {
			return err
		}
		rows := make([]statusJSON, 0, len(ps))
		var errs []error
		for _, p := range ps {
			row, err := status(ctx, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
				continue
			}
			rows = append(rows, row)
		}
		if *asJSON {
			enc := json.NewEncoder(out.stdout)
			enc.SetIndent("", "  ")
			errs = append(errs, enc.Encode(rows))
			return errors.Join(errs...)
		}
		tw := tabwriter.NewWriter(out.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tSTATE\tCHECKPOINT\tLAG (EVENTS)\tLAG (TIME)\tLAST EVENT")
		for _, r := range rows {
			events := strconv.Itoa(r.Lag.Events)
			if r.Lag.AtLeast {
				events = "≥" + events
			}
			if r.BeyondHead {
				events = "beyond head"
			}
			last := "-"
			if r.LastEvent != nil {
				last = r.LastEvent.Format(time.RFC3339)
			}
			state := r.State
			if r.Holder != "" {
				state += " (" + r.Holder + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%v\t%s\t%s\t%s\n", r.Name, r.Version, state, r.Checkpoint,
				events, duration(time.Duration(r.Lag.Seconds*float64(time.Second))), last)
			for _, p := range r.Partitions {
				state := p.State
				if p.Holder != "" {
					state += " (" + p.Holder + ")"
				}
				fmt.Fprintf(tw, "  %s/p%d\t\t%s\t%v\t\t\t\n", r.Name, p.Partition, state, p.Checkpoint)
			}
		}
		errs = append(errs, tw.Flush())
		for _, r := range rows {
			if r.Error != "" {
				fmt.Fprintf(out.stdout, "%s: %s\n", r.Name, r.Error)
			}
		}
		return errors.Join(errs...)
	}
}

// status measures one projection.
func status(ctx context.Context, p Projection) (statusJSON, error) {
	st, err := p.Status(ctx)
	if err != nil {
		return statusJSON{}, err
	}
	lag, err := p.Lag(ctx)
	beyond := errors.Is(err, projection.ErrCheckpointBeyondHead)
	if err != nil && !beyond {
		return statusJSON{}, err
	}
	row := statusJSON{
		Name:       p.Name(),
		Version:    st.Version,
		State:      string(st.State),
		Holder:     st.Holder,
		Checkpoint: st.Checkpoint,
		Head:       lag.Head,
		Lag:        lagJSON{Events: lag.Events, AtLeast: lag.AtLeast, Seconds: lag.Time.Seconds()},
	}
	if !st.LastEvent.IsZero() {
		last := st.LastEvent.UTC()
		row.LastEvent = &last
	}
	if st.Err != nil {
		row.Error = st.Err.Error()
	}
	if beyond {
		row.BeyondHead, row.Error = true, err.Error()+": rebuild it"
	}
	for _, p := range st.Parts {
		row.Partitions = append(row.Partitions, partJSON{Partition: p.Partition, State: string(p.State), Holder: p.Holder, Checkpoint: p.Checkpoint})
	}
	return row, nil
}

// rebuildCommand is "rebuild [NAME... | --all] [--blue-green] [--drop-old]".
func (t *Tool) rebuildCommand(fs *flag.FlagSet) action {
	all := fs.Bool("all", false, "rebuild every projection")
	blueGreen := fs.Bool("blue-green", false, "build the next version beside the active one, which keeps serving, and switch to it once caught up (default: empty the read model and rebuild it in place)")
	dropOld := fs.Bool("drop-old", false, "with --blue-green: drop the old version after the switch")
	display := displayAuto
	fs.Var(&display, "progress", "how to show progress: `auto` (a bar on a terminal, lines otherwise), bar, lines or none")
	return func(ctx context.Context, out output, args []string) error {
		switch {
		case *all && len(args) > 0:
			return usagef("name projections or use --all, not both")
		case !*all && len(args) == 0:
			return usagef("name the projections to rebuild (%s), or use --all", t.names())
		case *dropOld && !*blueGreen:
			return usagef("--drop-old goes with --blue-green")
		}
		ps, err := t.selected(args)
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			fmt.Fprintln(out.stdout, "no projections to rebuild")
			return nil
		}
		v := &view{w: out.stdout, display: display.resolve(out.stdout)}
		for i, p := range ps {
			r := &rebuild{p: p, view: v, blueGreen: *blueGreen, dropOld: *dropOld, tool: t.name}
			if err := r.run(ctx); err != nil {
				v.end()
				if rest := ps[i+1:]; len(rest) > 0 {
					names := make([]string, len(rest))
					for i, p := range rest {
						names[i] = p.Name()
					}
					err = fmt.Errorf("%w\nnot started: %s", err, strings.Join(names, ", "))
				}
				return err
			}
		}
		return nil
	}
}

// rebuild is the rebuild of one projection.
type rebuild struct {
	p         Projection
	view      *view
	blueGreen bool
	dropOld   bool
	tool      string // the tool's name, for the commands it suggests

	mu   sync.Mutex
	last projection.Progress
	seen bool // last is set
	done bool // the rebuild reported that it caught up
}

func (r *rebuild) report(p projection.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.seen = p, true
	if p.Done {
		r.done = true
		return
	}
	r.view.update(p)
}

func (r *rebuild) run(ctx context.Context) error {
	began := time.Now()
	name := r.p.Name()
	if !r.blueGreen {
		stop := r.watchLease(ctx, "stop it, or rebuild with --blue-green beside it")
		err := r.p.Rebuild(ctx, r.report)
		stop()
		if r.interrupted(ctx, err) {
			return &interruptedError{fmt.Sprintf("%s: rebuild interrupted%s; the read model stays incomplete until it ends: run the same command again to resume", name, r.where())}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r.view.finish(fmt.Sprintf("%s: rebuilt in place%s", name, r.summary(time.Since(began))))
		return nil
	}
	stop := r.watchLease(ctx, "is another rebuild of it running?")
	from, to, err := r.p.RebuildBlueGreen(ctx, r.report)
	stop()
	if r.interrupted(ctx, err) {
		if to == 0 { // before it knew the versions
			return &interruptedError{fmt.Sprintf("%s: blue/green rebuild interrupted before it started; run the same command again", name)}
		}
		return &interruptedError{fmt.Sprintf("%s: blue/green rebuild of version %d interrupted%s; version %d keeps serving: run the same command again to resume version %d", name, to, r.where(), from, to)}
	}
	if err != nil && !r.switched(ctx, err) {
		return fmt.Errorf("%s: %w", name, err)
	}
	r.view.finish(fmt.Sprintf("%s: built version %d beside version %d and switched to it%s", name, to, from, r.summary(time.Since(began))))
	if !r.dropOld {
		return nil
	}
	if ctx.Err() != nil {
		return &interruptedError{fmt.Sprintf("%s: interrupted before dropping version %d: drop it with %q", name, from, fmt.Sprintf("%s drop %s %d", r.tool, name, from))}
	}
	if err := r.p.DropVersion(ctx, from); err != nil {
		return fmt.Errorf("%s: switched to version %d, but dropping version %d failed: %w", name, to, from, err)
	}
	r.view.finish(fmt.Sprintf("%s: dropped version %d", name, from))
	return nil
}

// leaseCheck is how long a rebuild runs before the tool checks whether it
// is waiting for its projection's lease, and how often.
const leaseCheck = time.Second

// watchLease says so, once, when the rebuild waits for the lease of its
// projection ([projection.Leaser]), which another process holds: a
// rebuild in place waits for as long as a service runs the projection.
// hint says what to do about it. stop ends the watch.
func (r *rebuild) watchLease(ctx context.Context, hint string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(leaseCheck)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r.mu.Lock()
			started := r.seen
			r.mu.Unlock()
			if started {
				return
			}
			st, err := r.p.Status(ctx)
			if err != nil || st.State != projection.StateStandby {
				continue
			}
			r.mu.Lock()
			holder := "another process"
			if st.Holder != "" {
				holder = st.Holder
			}
			r.view.note(fmt.Sprintf("%s: waiting for the projection's lease, which %s holds (%s); Ctrl-C gives up", r.p.Name(), holder, hint))
			r.mu.Unlock()
			return
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// interrupted reports whether ctx ended the rebuild before it caught up.
// The runner turns a cancelled rebuild into a nil error after committing
// its last batch, so the sign is a context that is done and no final
// report.
func (r *rebuild) interrupted(ctx context.Context, err error) bool {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	return ctx.Err() != nil && !done && (err == nil || errors.Is(err, ctx.Err()))
}

// switched reports whether a blue/green rebuild that returned err
// switched versions all the same: the runner returns ctx's error when ctx
// ended right after the switch.
func (r *rebuild) switched(ctx context.Context, err error) bool {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	return done && ctx.Err() != nil && errors.Is(err, ctx.Err())
}

// where says how far the rebuild got, from its last report.
func (r *rebuild) where() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen {
		return ""
	}
	return fmt.Sprintf(" at %d%% (%v)", percent(r.last), r.last.Position)
}

// summary sums up a finished rebuild.
func (r *rebuild) summary(elapsed time.Duration) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen {
		return " in " + duration(elapsed)
	}
	rate := ""
	if s := elapsed.Seconds(); s > 0 {
		rate = fmt.Sprintf(" (%.0f events/s)", float64(r.last.Events)/s)
	}
	return fmt.Sprintf(": %d events in %s%s, at %v", r.last.Events, duration(elapsed), rate, r.last.Position)
}

// dropCommand is "drop NAME VERSION".
func (t *Tool) dropCommand(fs *flag.FlagSet) action {
	return func(ctx context.Context, out output, args []string) error {
		if len(args) != 2 {
			return usagef("want a projection and a version, got %q", args)
		}
		ps, err := t.selected(args[:1])
		if err != nil {
			return err
		}
		version, err := strconv.Atoi(strings.TrimPrefix(args[1], "v"))
		if err != nil || version < 1 {
			return usagef("version %q: want a number from 1", args[1])
		}
		if err := ps[0].DropVersion(ctx, version); err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		fmt.Fprintf(out.stdout, "%s: dropped version %d\n", args[0], version)
		return nil
	}
}

// duration formats d for people: "0s", "80µs", "350ms", "1.5s", "2m10s".
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
