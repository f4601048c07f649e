package sqlproj

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/eventfold/eventfold/internal/backoff"
	"github.com/eventfold/eventfold/projection"
)

// releaseTimeout bounds how long giving a lease back waits for the
// database: not long, for it delays the stop of its holder (a service
// that shuts down during an outage), and past it the lease expires by
// itself.
const releaseTimeout = time.Second

// Lease implements [projection.Leaser]: it blocks until this process holds
// the lease on key, or ctx is done. See the package documentation for how
// leases work.
func (c *Checkpoints) Lease(ctx context.Context, key string) (context.Context, func(), error) {
	return c.s.lease(ctx, key)
}

// LeaseHolder implements [projection.LeaseHolders]: it returns the name
// of the holder of key's lease ([WithLeaseHolder]), or "" when nobody holds
// it.
func (c *Checkpoints) LeaseHolder(ctx context.Context, key string) (string, error) {
	return c.s.leaseHolder(ctx, key)
}

// thisHost is the name of this host, as leases record it.
var thisHost = func() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "unknown-host"
	}
	return host
}()

// defaultHolder names this process: host name and process ID.
func defaultHolder() string { return thisHost + ":" + strconv.Itoa(os.Getpid()) }

// instances holds the instance IDs of the stores of this process.
var instances sync.Map

// gone reports whether the holder of a lease of this host, process pid
// and store instance, is gone: another process that no longer runs, or a
// store of this process ID that this process never had (an earlier
// incarnation with the same process ID, as in a container that restarted).
func gone(pid int64, instance string) bool {
	if pid == int64(os.Getpid()) {
		_, ours := instances.Load(instance)
		return !ours
	}
	return processGone(pid)
}

// held is a lease this store holds.
type held struct {
	key   string
	token int64
	// loss ends when the lease does: with a cause matching
	// projection.ErrLeaseLost when it is lost, context.Canceled when it
	// is given back.
	loss context.Context
	lose context.CancelCauseFunc
}

// bound returns parent, ended when the lease ends.
func (h *held) bound(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	unwatch := context.AfterFunc(h.loss, func() { cancel(context.Cause(h.loss)) })
	return ctx, func() { unwatch(); cancel(nil) }
}

// lease is [Checkpoints.Lease]. It tries to take the lease at once, then
// every lease poll interval; a failure of the database while it waits is
// logged and tried again, not returned.
func (s *store[Tx]) lease(ctx context.Context, key string) (context.Context, func(), error) {
	failing := false
	for {
		start := time.Now()
		// One take at a time per store, so that its own leases, taken
		// but not yet recorded, are not taken for orphans.
		s.taking.Lock()
		token, err := s.tryLease(ctx, key)
		var held context.Context
		var release func()
		if token != 0 {
			held, release = s.hold(ctx, key, token, start)
		}
		s.taking.Unlock()
		switch {
		case token != 0 && ctx.Err() != nil:
			release() // taken as ctx ended: given back at once
			return nil, nil, ctx.Err()
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case err != nil:
			if !failing {
				s.cfg.logger.WarnContext(ctx, "sqlproj: taking a lease failed; trying again", "key", key, "error", err)
			}
			failing = true
		case token != 0:
			if failing {
				s.cfg.logger.InfoContext(ctx, "sqlproj: the database answers again", "key", key)
			}
			return held, release, nil
		}
		if err := backoff.Sleep(ctx, s.cfg.leasePoll); err != nil {
			return nil, nil, err
		}
	}
}

// tryLease takes the lease on key if nobody holds it (or its holder let it
// expire), and returns its fencing token; 0 if another holds it. It also
// takes over at once a lease that nobody can be using: one this store took
// but never knew it had (the answer to its take was lost), and on SQLite,
// one whose holder was a process of this host that is gone (killed,
// crashed): a SQLite file is on one host.
func (s *store[Tx]) tryLease(ctx context.Context, key string) (token int64, err error) {
	// Not cut short as soon as ctx ends: a take interrupted by its
	// caller's stop may have been written all the same, and its holder,
	// not knowing it, would leave it to expire, making the next holder
	// wait a whole time-to-live. Once ctx ends, the take has the time of
	// a release to finish; its caller gives back a take that ends after
	// ctx.
	caller := ctx
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.leaseTTL)
	defer cancel()
	stop := context.AfterFunc(caller, func() {
		t := time.AfterFunc(releaseTimeout, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	defer stop()
	ttl := s.cfg.leaseTTL.Milliseconds()
	pid := int64(os.Getpid())
	err = s.db.queryRow(ctx, s.q.takeLease, key, s.cfg.leaseHolder, ttl, thisHost, pid, s.instance).Scan(&token)
	if isNoRows(err) {
		var (
			host, instance string
			holder, seen   int64
		)
		err = s.db.queryRow(ctx, s.q.leaseRow, key).Scan(&host, &holder, &instance, &seen)
		if err == nil && s.orphan(key, host, holder, instance) {
			// Taken only if nobody took it meanwhile: the token says.
			err = s.db.queryRow(ctx, s.q.takeOrphan, key, s.cfg.leaseHolder, ttl, thisHost, pid, s.instance, seen).Scan(&token)
			if err == nil {
				s.cfg.logger.InfoContext(ctx, "sqlproj: took over a lease that its holder no longer used", "key", key,
					"host", host, "pid", holder)
			}
		}
	}
	switch {
	case isNoRows(err):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("sqlproj: lease %q: %w", key, withCtx(ctx, err))
	}
	return token, nil
}

// orphan reports whether the lease on key, held by host, process pid and
// store instance, is one that nobody can be using. s.taking is held.
func (s *store[Tx]) orphan(key, host string, pid int64, instance string) bool {
	if instance == s.instance {
		s.mu.Lock()
		_, holding := s.leased[key]
		s.mu.Unlock()
		return !holding
	}
	return s.dialect == SQLite && host == thisHost && gone(pid, instance)
}

// hold records the lease taken at start and has the heartbeat renew it;
// it returns the lease's context and its release.
func (s *store[Tx]) hold(ctx context.Context, key string, token int64, start time.Time) (context.Context, func()) {
	loss, lose := context.WithCancelCause(context.WithoutCancel(ctx))
	h := &held{key: key, token: token, loss: loss, lose: lose}
	held, stopHolding := h.bound(ctx)
	s.rearm(key)
	s.mu.Lock()
	s.leased[key] = h
	s.mu.Unlock()
	s.cfg.logger.DebugContext(ctx, "sqlproj: lease taken", "key", key, "token", token, "holder", s.cfg.leaseHolder)
	s.renewLater(ctx, h, start)

	// Release outlives ctx, which is usually done by then; it keeps its
	// values, for logs and traces.
	base := context.WithoutCancel(ctx)
	var once sync.Once
	return held, func() {
		once.Do(func() {
			s.stopRenewing(h)
			s.mu.Lock()
			delete(s.leased, key)
			s.mu.Unlock()
			lose(nil)
			stopHolding()
			if errors.Is(context.Cause(loss), projection.ErrLeaseLost) {
				return // nothing to give back
			}
			s.giveBack(base, key, token)
		})
	}
}

// giveBack ends the lease of key under token in the database, so that the
// next holder need not wait for it to expire. ctx only carries values.
func (s *store[Tx]) giveBack(ctx context.Context, key string, token int64) {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if _, err := s.db.exec(ctx, s.q.releaseLease, key, token); err != nil {
		s.cfg.logger.WarnContext(ctx, "sqlproj: giving a lease back failed; it expires by itself", "key", key,
			"ttl", s.cfg.leaseTTL, "error", withCtx(ctx, err))
		return
	}
	s.cfg.logger.DebugContext(ctx, "sqlproj: lease released", "key", key, "token", token)
}

// lost ends h: its holder stops committing.
func (s *store[Tx]) lost(ctx context.Context, h *held, why error) {
	err := fmt.Errorf("%w: %q: %w", projection.ErrLeaseLost, h.key, why)
	s.cfg.logger.ErrorContext(ctx, "sqlproj: lease lost", "key", h.key, "error", why)
	h.lose(err)
}

// leaseOf returns the lease this store holds on key, if any; a lease this
// store lost is an error matching projection.ErrFenced and
// projection.ErrLeaseLost.
func (s *store[Tx]) leaseOf(key string) (*held, error) {
	s.mu.Lock()
	h := s.leased[key]
	s.mu.Unlock()
	if h == nil {
		return nil, nil
	}
	if cause := context.Cause(h.loss); errors.Is(cause, projection.ErrLeaseLost) {
		return nil, fmt.Errorf("sqlproj: %w", errors.Join(projection.ErrFenced, cause))
	}
	return h, nil
}

// fence checks, in the transaction of a commit of h's key, that h is still
// this store's lease, and locks the lease's row (PostgreSQL) or the
// database (SQLite) until the transaction ends, so that nobody takes the
// lease over meanwhile.
//
// On PostgreSQL it also makes the server end the transaction's session if
// it waits for its client longer than the lease's time-to-live (a holder
// cut off in the middle of a commit), so that the row lock does not keep
// the next holder waiting.
func (s *store[Tx]) fence(ctx context.Context, tx txn[Tx], h *held) error {
	args := []any{h.key, h.token}
	if s.dialect == Postgres {
		args = append(args, strconv.FormatInt(s.cfg.leaseTTL.Milliseconds(), 10))
	}
	n, err := tx.exec(ctx, s.q.fenceLease, args...)
	if err != nil {
		return fmt.Errorf("sqlproj: lease of %q: %w", h.key, err)
	}
	if n != 1 {
		return fmt.Errorf("sqlproj: the lease of %q expired or was taken over: %w", h.key,
			errors.Join(projection.ErrFenced, projection.ErrLeaseLost))
	}
	return nil
}

func (s *store[Tx]) leaseHolder(ctx context.Context, key string) (string, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var holder string
	err := s.db.queryRow(ctx, s.q.leaseHolder, key).Scan(&holder)
	switch {
	case isNoRows(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("sqlproj: holder of the lease of %q: %w", key, withCtx(ctx, err))
	}
	return holder, nil
}
