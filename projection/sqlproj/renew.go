package sqlproj

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// renewals renews all the leases of a store together, in one statement per
// heartbeat, whatever their number: a replica holding many partitions and
// its membership sends one UPDATE every third of the time-to-live, not one
// per lease. Each lease is still lost on its own: when its row is no
// longer its own (another took it over), or when it was not renewed by its
// expiry.
//
// The heartbeat is a goroutine that runs while the store holds leases: the
// first lease starts it, and it ends when the last one is given back.
type renewals struct {
	mu      sync.Mutex
	leases  map[*held]renewal
	running bool
	kick    chan struct{} // wakes the heartbeat when the leases change
	// busy is held while a renewal runs: a lease given back waits for it,
	// so that no renewal extends a lease after it was given back.
	busy sync.Mutex
	// interrupt ends the renewal under way, if any: a lease given back
	// does not wait for a database that does not answer.
	interrupt context.CancelFunc
}

// renewal is the state of a lease's renewals: the start of the last that
// succeeded, and the expiry it set, the time-to-live after its start (the
// database's expiry is later, since it counts from when it ran the
// statement).
type renewal struct {
	renewed, expiry time.Time
}

// renewLater adds h, taken at start, to the leases the heartbeat renews,
// and starts the heartbeat if it does not run. ctx gives the heartbeat its
// values (for logs and traces).
func (s *store[Tx]) renewLater(ctx context.Context, h *held, start time.Time) {
	r := &s.renewals
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leases == nil {
		r.leases = make(map[*held]renewal)
		r.kick = make(chan struct{}, 1)
	}
	r.leases[h] = renewal{renewed: start, expiry: start.Add(s.cfg.leaseTTL)}
	if !r.running {
		r.running = true
		go s.heartbeat(context.WithoutCancel(ctx))
	} else {
		r.wake()
	}
}

// stopRenewing removes h from the leases the heartbeat renews, and ends
// and waits for a renewal under way (the others' leases are renewed again
// at once).
func (s *store[Tx]) stopRenewing(h *held) {
	r := &s.renewals
	r.mu.Lock()
	delete(r.leases, h)
	r.wake()
	if r.interrupt != nil {
		r.interrupt()
	}
	r.mu.Unlock()
	r.busy.Lock()
	defer r.busy.Unlock()
}

// wake wakes the heartbeat, if it sleeps. r.mu is held.
func (r *renewals) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// heartbeat renews the store's leases every third of the time-to-live
// after their last renewal; after a failure, every tenth of the
// time-to-live until they expire. It ends when the store holds no lease.
func (s *store[Tx]) heartbeat(ctx context.Context) {
	r := &s.renewals
	var failed error
	for {
		r.mu.Lock()
		if len(r.leases) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		next := s.nextRenewal(failed)
		r.mu.Unlock()
		t := time.NewTimer(time.Until(next))
		select {
		case <-t.C:
		case <-r.kick:
			t.Stop()
			continue
		}
		err := s.renewAll(ctx)
		switch {
		case err != nil && failed == nil:
			s.cfg.logger.WarnContext(ctx, "sqlproj: renewing leases failed; trying again until they expire", "error", err)
		case err == nil && failed != nil:
			s.cfg.logger.InfoContext(ctx, "sqlproj: leases renewed again")
		}
		failed = err
	}
}

// nextRenewal returns when the heartbeat renews the leases next: a third
// of the time-to-live after the oldest renewal, a tenth of it after a
// failure, and never after the earliest expiry. r.mu is held.
func (s *store[Tx]) nextRenewal(failed error) time.Time {
	var next, expiry time.Time
	for _, st := range s.renewals.leases {
		due := st.renewed.Add(s.cfg.leaseTTL / 3)
		if next.IsZero() || due.Before(next) {
			next = due
		}
		if expiry.IsZero() || st.expiry.Before(expiry) {
			expiry = st.expiry
		}
	}
	if failed != nil {
		next = time.Now().Add(s.cfg.leaseTTL / 10)
	}
	if expiry.Before(next) {
		next = expiry
	}
	return next
}

// renewAll renews every lease of the store in one statement, bounded by
// the earliest expiry, and ends the leases that it did not renew: those
// another took over, and, if the statement failed, those past their
// expiry.
func (s *store[Tx]) renewAll(ctx context.Context) error {
	r := &s.renewals
	r.busy.Lock()
	defer r.busy.Unlock()
	r.mu.Lock()
	batch := make(map[*held]renewal, len(r.leases))
	var deadline time.Time
	pairs := make([][2]any, 0, len(r.leases))
	for h, st := range r.leases {
		batch[h] = st
		pairs = append(pairs, [2]any{h.key, h.token})
		if deadline.IsZero() || st.expiry.Before(deadline) {
			deadline = st.expiry
		}
	}
	if len(batch) == 0 {
		r.mu.Unlock()
		return nil
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	interrupted, interrupt := context.WithCancel(rctx)
	r.interrupt = interrupt
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.interrupt = nil
		r.mu.Unlock()
		interrupt()
		cancel()
	}()
	arg, err := json.Marshal(pairs)
	if err != nil {
		return err
	}
	start := time.Now()
	renewed, err := s.renew(interrupted, string(arg))
	if err != nil && interrupted.Err() != nil && rctx.Err() == nil {
		return nil // a lease was given back: the heartbeat renews the others at once
	}
	err = withCtx(rctx, err)

	type loss struct {
		h   *held
		why error
	}
	var lost []loss
	r.mu.Lock()
	for h, st := range batch {
		if _, still := r.leases[h]; !still {
			continue // given back meanwhile
		}
		switch {
		case err == nil && renewed[h.key]:
			r.leases[h] = renewal{renewed: start, expiry: start.Add(s.cfg.leaseTTL)}
		case err == nil:
			delete(r.leases, h)
			lost = append(lost, loss{h, errors.New("another holder took it over")})
		case !time.Now().Before(st.expiry):
			delete(r.leases, h)
			lost = append(lost, loss{h, fmt.Errorf("not renewed within its time-to-live of %v: %w", s.cfg.leaseTTL, err)})
		}
	}
	r.mu.Unlock()
	for _, l := range lost {
		s.lost(ctx, l.h, l.why)
	}
	return err
}

// renew runs the renewal statement for the (key, token) pairs of leases, a
// JSON array, and returns the keys it renewed.
func (s *store[Tx]) renew(ctx context.Context, leases string) (map[string]bool, error) {
	rows, err := s.db.query(ctx, s.q.renewLeases, s.cfg.leaseTTL.Milliseconds(), leases)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	renewed := make(map[string]bool)
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, err
		}
		renewed[key] = true
	}
	return renewed, rows.Err()
}
