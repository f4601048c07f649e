package projection

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoVersions means a blue/green operation met checkpoints that do not
// record versions ([Versions]).
var ErrNoVersions = errors.New("projection: the checkpoint store does not record versions")

// Rebuild rebuilds the read model in place: it empties it (Reset) and sets
// the checkpoint back to the start in one transaction, replays the whole log
// into it, and returns once caught up. Queries see the read model fill up
// again while it runs. Interrupted, it leaves the checkpoint marked
// "rebuilding", and the next Rebuild, CatchUp or Run continues from there
// instead of starting over. report, if not nil, receives the progress at
// most every second (or the interval of [WithProgress]) and at the end.
func (r *Runner[Tx]) Rebuild(ctx context.Context, report func(Progress)) error {
	return r.run(ctx, plan{mode: modeCatchUp, reset: true, report: report})
}

// RebuildBlueGreen builds a new version of the read model beside the active
// one, which keeps serving, and switches queries to it atomically once it
// has caught up (calling Projection.Activate in the transaction that
// records the switch). It returns the versions switched from and to; drop
// the old one with [Runner.DropVersion] when nothing reads it any more.
// Interrupted, it continues the same new version when called again.
// report is as for Rebuild.
func (r *Runner[Tx]) RebuildBlueGreen(ctx context.Context, report func(Progress)) (from, to int, err error) {
	v, ok := r.cps.(Versions[Tx])
	if !ok {
		return 0, 0, ErrNoVersions
	}
	active, err := v.ActiveVersion(ctx, r.p.Name)
	if err != nil {
		return 0, 0, err
	}
	from = max(active, r.p.version())
	to = from + 1
	err = r.run(ctx, plan{mode: modeCatchUp, version: to, report: report})
	return from, to, err
}

// DropVersion deletes an old version of the read model (Projection.Drop)
// and forgets its checkpoint. The active version cannot be dropped.
func (r *Runner[Tx]) DropVersion(ctx context.Context, version int) error {
	if r.p.Drop == nil {
		return fmt.Errorf("%w: %s has no Drop", ErrInvalidProjection, r.p.Name)
	}
	v, ok := r.cps.(Versions[Tx])
	if !ok {
		return ErrNoVersions
	}
	active, err := v.ActiveVersion(ctx, r.p.Name)
	if err != nil {
		return err
	}
	if version == active || version < 1 {
		return fmt.Errorf("%w: %s: cannot drop version %d (the active version is %d)", ErrInvalidProjection, r.p.Name, version, active)
	}
	return r.cps.Commit(ctx, r.key(version), Checkpoint{}, func(tx Tx) error {
		return r.p.Drop(ctx, tx, version)
	})
}
