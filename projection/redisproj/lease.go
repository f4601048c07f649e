package redisproj

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/eventfold/eventfold/internal/backoff"
	"github.com/eventfold/eventfold/projection"
)

// releaseTimeout bounds how long giving a lease back waits for Redis: past
// it, the lease expires by itself.
const releaseTimeout = time.Second

// leaseValue is the value of a lease's key.
type leaseValue struct {
	Holder   string `json:"holder"`
	Instance string `json:"instance"` // the Checkpoints that holds it
	Token    string `json:"token"`    // unique to one take
}

// Scripts of the leases: each compares the lease's value with the
// holder's before it touches the key.
var (
	renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)
	takeOverScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
	return 1
end
return 0`)
)

// held is a lease this Checkpoints holds.
type held struct {
	key   string
	value string // the lease key's value: the fence of its commits
	// loss ends when the lease does: with a cause matching
	// projection.ErrLeaseLost when it is lost, context.Canceled when it
	// is given back.
	loss context.Context
	lose context.CancelCauseFunc
	stop context.CancelFunc // stops the renewals
	done chan struct{}      // closed when the renewals have stopped
}

// bound returns parent, ended when the lease ends.
func (h *held) bound(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	unwatch := context.AfterFunc(h.loss, func() { cancel(context.Cause(h.loss)) })
	return ctx, func() { unwatch(); cancel(nil) }
}

// Lease implements [projection.Leaser]: it blocks until this Checkpoints
// holds the lease on key, or ctx is done. A lease is the key
// "<prefix>lease:<key>", set if absent (SET NX) with the time-to-live
// ([WithLeaseTTL]) to a value unique to the take; a goroutine renews it
// every third of the time-to-live (a script that extends the key only if
// it still holds that value). The lease is lost when a renewal finds
// another value or none (it expired, another took it, Redis lost its
// data), or when no renewal succeeded within the time-to-live; the commits
// of the key check the value in their transaction (see
// [Checkpoints.Commit]). A waiting Lease tries again every lease poll
// interval ([WithLeasePoll]); a failure of Redis while it waits is logged
// and tried again, not returned. release deletes the key if it still
// holds the value, so that a standby takes over at once.
func (c *Checkpoints) Lease(ctx context.Context, key string) (context.Context, func(), error) {
	if key == "" {
		return nil, nil, errors.New("redisproj: lease: empty key")
	}
	raw, _ := json.Marshal(leaseValue{Holder: c.cfg.leaseHolder, Instance: c.instance, Token: uuid.NewString()})
	value := string(raw)
	failing := false
	for {
		start := time.Now()
		// One take at a time per Checkpoints, so that its own leases,
		// taken but not yet recorded, are not taken for orphans.
		c.taking.Lock()
		taken, err := c.tryLease(ctx, key, value)
		var held context.Context
		var release func()
		if taken && ctx.Err() == nil {
			held, release = c.hold(ctx, key, value, start)
		}
		c.taking.Unlock()
		switch {
		case taken && ctx.Err() != nil:
			if release != nil {
				release()
			} else {
				c.giveBack(context.WithoutCancel(ctx), key, value)
			}
			return nil, nil, ctx.Err()
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case err != nil:
			if !failing {
				c.cfg.logger.WarnContext(ctx, "redisproj: taking a lease failed; trying again", "key", key, "error", err)
			}
			failing = true
		case taken:
			if failing {
				c.cfg.logger.InfoContext(ctx, "redisproj: Redis answers again", "key", key)
			}
			return held, release, nil
		}
		if err := backoff.Sleep(ctx, c.cfg.leasePoll); err != nil {
			return nil, nil, err
		}
	}
}

// tryLease takes the lease on key with value if nobody holds it. A lease
// that holds value already (the answer to an earlier take was lost) is
// taken; one of this Checkpoints that it does not know it holds (a take
// whose answer was lost, by a Lease that then gave up) is taken over.
func (c *Checkpoints) tryLease(ctx context.Context, key, value string) (bool, error) {
	// Not cut short by ctx's end: a take interrupted may have been made
	// all the same; its caller gives back a take that ends after ctx.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(c.cfg.callTimeout, c.cfg.leaseTTL))
	defer cancel()
	lk := c.leaseKey(key)
	ok, err := c.client.SetNX(ctx, lk, value, c.cfg.leaseTTL).Result()
	if err != nil || ok {
		return ok, c.failOrNil(ctx, fmt.Sprintf("lease %q", key), err)
	}
	cur, err := c.client.Get(ctx, lk).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil // given back meanwhile: taken at the next try
	case err != nil:
		return false, c.fail(ctx, fmt.Sprintf("lease %q", key), err)
	case cur == value:
		return true, nil
	}
	var v leaseValue
	if json.Unmarshal([]byte(cur), &v) != nil || v.Instance != c.instance {
		return false, nil
	}
	c.mu.Lock()
	_, holding := c.leased[key]
	c.mu.Unlock()
	if holding {
		return false, nil
	}
	n, err := takeOverScript.Run(ctx, c.client, []string{lk}, cur, value, c.cfg.leaseTTL.Milliseconds()).Int()
	if err != nil {
		return false, c.fail(ctx, fmt.Sprintf("lease %q", key), err)
	}
	return n == 1, nil
}

// failOrNil is fail, or nil when err is.
func (c *Checkpoints) failOrNil(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	return c.fail(ctx, what, err)
}

// hold records the lease on key, taken at start with value, and starts
// its renewals; it returns the lease's context and its release.
func (c *Checkpoints) hold(ctx context.Context, key, value string, start time.Time) (context.Context, func()) {
	base := context.WithoutCancel(ctx) // keeps ctx's values, for logs and traces
	loss, lose := context.WithCancelCause(base)
	renewing, stop := context.WithCancel(base)
	h := &held{key: key, value: value, loss: loss, lose: lose, stop: stop, done: make(chan struct{})}
	heldCtx, stopHolding := h.bound(ctx)
	c.rearm(key)
	c.mu.Lock()
	c.leased[key] = h
	c.mu.Unlock()
	c.cfg.logger.DebugContext(ctx, "redisproj: lease taken", "key", key, "holder", c.cfg.leaseHolder)
	go c.renew(renewing, h, start)
	var once sync.Once
	return heldCtx, func() {
		once.Do(func() {
			stop()
			<-h.done
			c.mu.Lock()
			if c.leased[key] == h {
				delete(c.leased, key)
			}
			c.mu.Unlock()
			lose(nil)
			stopHolding()
			if errors.Is(context.Cause(loss), projection.ErrLeaseLost) {
				return // nothing to give back
			}
			c.giveBack(base, key, value)
		})
	}
}

// renew renews h every third of the time-to-live after its last renewal
// (a tenth of it after a failure) until ctx ends or the lease is lost.
func (c *Checkpoints) renew(ctx context.Context, h *held, start time.Time) {
	defer close(h.done)
	ttl := c.cfg.leaseTTL
	renewed, expiry := start, start.Add(ttl)
	var failed error
	for {
		next := renewed.Add(ttl / 3)
		if failed != nil {
			next = time.Now().Add(ttl / 10)
		}
		if expiry.Before(next) {
			next = expiry
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		at := time.Now()
		rctx, cancel := context.WithDeadline(ctx, expiry)
		n, err := renewScript.Run(rctx, c.client, []string{c.leaseKey(h.key)}, h.value, ttl.Milliseconds()).Int()
		cancel()
		switch {
		case ctx.Err() != nil:
			return // given back
		case err == nil && n == 1:
			if failed != nil {
				c.cfg.logger.InfoContext(ctx, "redisproj: lease renewed again", "key", h.key)
			}
			renewed, expiry, failed = at, at.Add(ttl), nil
		case err == nil:
			c.lost(ctx, h, errors.New("it expired or another holder took it over"))
			return
		case !time.Now().Before(expiry):
			c.lost(ctx, h, fmt.Errorf("not renewed within its time-to-live of %v: %w", ttl, err))
			return
		default:
			if failed == nil {
				c.cfg.logger.WarnContext(ctx, "redisproj: renewing a lease failed; trying again until it expires", "key", h.key, "error", err)
			}
			failed = err
		}
	}
}

// lost ends h: its holder stops committing.
func (c *Checkpoints) lost(ctx context.Context, h *held, why error) {
	c.cfg.logger.ErrorContext(ctx, "redisproj: lease lost", "key", h.key, "error", why)
	h.lose(fmt.Errorf("%w: %q: %w", projection.ErrLeaseLost, h.key, why))
}

// giveBack deletes the lease of key if it still holds value. ctx only
// carries values.
func (c *Checkpoints) giveBack(ctx context.Context, key, value string) {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	if err := releaseScript.Run(ctx, c.client, []string{c.leaseKey(key)}, value).Err(); err != nil {
		c.cfg.logger.WarnContext(ctx, "redisproj: giving a lease back failed; it expires by itself", "key", key,
			"ttl", c.cfg.leaseTTL, "error", err)
	}
}

// leaseOf returns the lease this Checkpoints holds on key, if any; a lease
// it lost is an error matching projection.ErrFenced and
// projection.ErrLeaseLost.
func (c *Checkpoints) leaseOf(key string) (*held, error) {
	c.mu.Lock()
	h := c.leased[key]
	c.mu.Unlock()
	if h == nil {
		return nil, nil
	}
	if cause := context.Cause(h.loss); errors.Is(cause, projection.ErrLeaseLost) {
		return nil, fmt.Errorf("redisproj: %w", errors.Join(projection.ErrFenced, cause))
	}
	return h, nil
}

// LeaseHolder implements [projection.LeaseHolders]: the name of the holder
// of key's lease ([WithLeaseHolder]), or "" when nobody holds it.
func (c *Checkpoints) LeaseHolder(ctx context.Context, key string) (string, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	cur, err := c.client.Get(ctx, c.leaseKey(key)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", nil
	case err != nil:
		return "", c.fail(ctx, fmt.Sprintf("holder of the lease of %q", key), err)
	}
	var v leaseValue
	if err := json.Unmarshal([]byte(cur), &v); err != nil {
		return "", fmt.Errorf("redisproj: holder of the lease of %q: %w", key, err)
	}
	return v.Holder, nil
}

// memberLease is the key of the lease of member of group.
func memberLease(group, member string) string { return group + "/members/" + member }

// errNoName is the error of an empty group or member name.
var errNoName = errors.New("empty group or member name")

// Join implements [projection.Membership]: member is a member of group
// while this Checkpoints holds the lease "<group>/members/<member>", with
// the time-to-live and renewals of every lease ([WithLeaseTTL]), and is
// listed in the set "<prefix>members:<group>" once it holds it. Join blocks until it holds
// that lease: at once for a member name nobody else uses (one per
// replica); for the name of a process that died without leaving, once its
// lease has expired.
//
// Until leave is called or ctx ends, the membership is renewed in the
// background; if it is lost (Redis was away for longer than the
// time-to-live, or lost its data), it is taken again as soon as possible.
// leave gives the lease back, so that the others see the member gone at
// once; a process killed without leaving drops out of
// [Checkpoints.Members] when its lease expires.
func (c *Checkpoints) Join(ctx context.Context, group, member string) (func(), error) {
	if group == "" || member == "" {
		return nil, fmt.Errorf("redisproj: join %q as %q: %w", group, member, errNoName)
	}
	key := memberLease(group, member)
	joined, cancel := context.WithCancel(ctx)
	enlist := func() error {
		cctx, done := c.call(joined)
		defer done()
		return c.failOrNil(cctx, fmt.Sprintf("join %q as %q", group, member), c.client.SAdd(cctx, c.membersKey(group), member).Err())
	}
	held, release, err := c.Lease(joined, key)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("redisproj: join %q as %q: %w", group, member, err)
	}
	// Listed once the lease is held: Members removes the members listed
	// without a lease.
	if err := enlist(); err != nil {
		release()
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			<-held.Done()
			release()
			if joined.Err() != nil {
				return // left
			}
			c.cfg.logger.WarnContext(joined, "redisproj: membership lost; joining again", "group", group, "member", member,
				"error", context.Cause(held))
			if held, release, err = c.Lease(joined, key); err != nil {
				return // left while joining again
			}
			for enlist() != nil && joined.Err() == nil {
				// Listed when Redis answers again; the lease stays held.
				if backoff.Sleep(joined, c.cfg.leasePoll) != nil {
					break
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}, nil
}

// membersScript returns the members of the set KEYS[1] whose lease key,
// ARGV[1] followed by the member's name, exists, and removes the others
// from the set, atomically: a member re-listed after its lease is taken
// again is never removed.
var membersScript = redis.NewScript(`local live = {}
for _, m in ipairs(redis.call("SMEMBERS", KEYS[1])) do
	if redis.call("EXISTS", ARGV[1] .. m) == 1 then
		table.insert(live, m)
	else
		redis.call("SREM", KEYS[1], m)
	end
end
return live`)

// Members implements [projection.Membership]: the members of group whose
// lease is held, sorted. Members whose lease expired are removed from the
// group's set at the same time, in one script.
func (c *Checkpoints) Members(ctx context.Context, group string) ([]string, error) {
	if group == "" {
		return nil, fmt.Errorf("redisproj: members of %q: %w", group, errNoName)
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	out, err := membersScript.Run(ctx, c.client, []string{c.membersKey(group)}, c.leaseKey(memberLease(group, ""))).StringSlice()
	if err != nil {
		return nil, c.fail(ctx, fmt.Sprintf("members of %q", group), err)
	}
	slices.Sort(out)
	return out, nil
}
