// Package replay is the replay tool: the command line that lists
// projections, shows where they stand in the log, and rebuilds their read
// models from the start of the log, in place or blue/green. It is a
// package, not a program, so that any main can mount it beside its own
// commands, with its own store and runners:
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//		summaries, stock := … // the application's *projection.Runner values
//		var code int
//		switch os.Args[1] {
//		case "replay":
//			code = replay.New("orders replay", summaries, stock).Run(ctx, os.Args[2:], os.Stdout, os.Stderr)
//		// case "serve": …
//		}
//		stop()
//		os.Exit(code)
//	}
//
// [Run] is the short form for a tool named "replay". Any [Projection] can be
// driven; a [*projection.Runner] of any transaction type is one.
//
// The tool exits with 0 ([ExitOK]) on success, 1 ([ExitFailure]) when a
// command failed, with the error on stderr, 2 ([ExitUsage]) for a bad
// command line, with the usage on stderr, and 130 ([ExitInterrupted]) when a
// rebuild was interrupted.
//
// # Commands
//
//	list                          the projections and their versions, one a line
//	status [--json] [NAME...]     a table: version, state, checkpoint, lag in
//	                              events (≥ when counting stopped at
//	                              projection.MaxLagCount) and in time, last event
//	rebuild [flags] NAME... | --all
//	                              rebuild in place: empty the read model, replay the log
//	        --blue-green          build the next version beside the active one,
//	                              which keeps serving; switch once caught up
//	        --drop-old            with --blue-green: then drop the old version
//	        --progress MODE       auto (default), bar, lines or none
//	drop NAME VERSION             drop a version left by a blue/green rebuild
//	help [COMMAND]                the usage of the tool or of a command
//
// Flags and names may come in any order; "-h" after a command prints its
// usage. An unknown projection name is a usage error that lists the known
// ones, and nothing is done.
//
// "status --json" prints an array with an object per projection:
//
//	[
//	  {
//	    "name": "order-summaries",
//	    "version": 1,
//	    "state": "stopped",
//	    "checkpoint": "C:120/P:120",
//	    "head": "C:130/P:130",
//	    "lag": {"events": 10, "seconds": 4.5},
//	    "lastEvent": "2026-11-26T00:29:19Z"
//	  }
//	]
//
// "atLeast" is left out when false; "lastEvent" when unknown (a runner knows
// it only for the events it applied itself); "error" is there when the
// runner failed.
//
// A rebuild needs its projection's lease when the checkpoint store grants
// leases ([projection.Leaser]): a rebuild in place waits for as long as a
// running service holds it, and says so after a second. Stop the service,
// or rebuild blue/green, which builds the new version under a lease of its
// own while the service goes on serving the old one (and follows the switch).
//
// Several projections are rebuilt one after another, in the order named
// (in the order given to the tool for --all), so that the log is read once
// at a time and the output stays readable. The first that fails stops the
// command; the error names those not started.
//
// # Progress
//
// When stdout is a terminal (a character device), each rebuild draws a bar
// redrawn in place with \r: percentage, events applied, rate and time left,
// replaced by a final line when it is done. Anywhere else it prints a line
// per report of the runner, which a log keeps readably:
//
//	order-summaries: 12000 events, 45% (C:54000/P:54000), 8000 events/s, ~3s left
//	order-summaries: rebuilt in place: 26000 events in 3.2s (8125 events/s), at C:120000/P:120000
//
// The percentage is the commit position of the checkpoint reached against
// that of the head of the log when the rebuild started: the share of the
// log behind the checkpoint, so that a resumed rebuild goes on from where
// it stopped rather than from 0%. Events counts the events applied by this
// run. The runner reports at most every second by default
// ([projection.WithProgress] sets the interval). --progress forces a bar,
// lines, or only the final lines.
//
// # Interrupting and resuming
//
// Cancelling ctx interrupts a rebuild safely: the main passes a context
// from [os/signal.NotifyContext], so Ctrl-C cancels it. The runner commits its
// last batch whole or not at all, within its stop timeout
// ([projection.WithStopTimeout], 5s by default), and returns; the tool says
// how far the rebuild got, from the runner's last report, and exits with
// 130 ([ExitInterrupted]). Projections named after it are not started.
//
// Running the same command again resumes where the rebuild stopped, because
// the runner keeps its state in the checkpoint store: a rebuild in place
// leaves the checkpoint marked "rebuilding" (status shows the state
// "rebuilding"), so the next rebuild goes on without emptying the read model
// again; a blue/green rebuild goes on building the same new version, while
// the old one keeps serving. An interrupted rebuild in place leaves the read
// model incomplete until it is resumed; starting the service's runner
// resumes it too.
package replay
