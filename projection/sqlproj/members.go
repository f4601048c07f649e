package sqlproj

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/eventfold/eventfold/projection"
)

var (
	_ projection.Membership = (*Checkpoints)(nil)
	_ projection.Membership = (*PgxCheckpoints)(nil)
)

// membersInfix separates a group from a member in the key of a
// membership's lease: "<group>/members/<member>".
const membersInfix = "/members/"

// Join implements [projection.Membership]: member is a member of group
// while this process holds the lease "<group>/members/<member>" in the
// leases table, with the time-to-live and heartbeat of every lease
// ([WithLeaseTTL]). Join blocks until it holds that lease: at once for a
// member name that nobody else uses (one per replica); for the name of a
// process that died without leaving, once its membership has expired.
//
// Until leave is called or ctx ends, the membership is renewed in the
// background; if it is lost (the database was away for longer than the
// time-to-live), it is taken again as soon as possible. leave gives the
// lease back, so that the others see the member gone at once; a process
// killed without leaving drops out of [Checkpoints.Members] after the
// time-to-live (on SQLite, at once: see the package documentation on
// leases of processes that are gone).
func (c *Checkpoints) Join(ctx context.Context, group, member string) (leave func(), err error) {
	return c.s.join(ctx, group, member)
}

// Members implements [projection.Membership]: the members of group whose
// membership has not expired by the database's clock, sorted. On SQLite,
// the members held by processes of this host that are gone are left out
// at once.
func (c *Checkpoints) Members(ctx context.Context, group string) ([]string, error) {
	return c.s.members(ctx, group)
}

// Join implements [projection.Membership] as [Checkpoints.Join] does, in
// the same table: a Checkpoints and a PgxCheckpoints with the same table
// prefix see each other's members.
func (c *PgxCheckpoints) Join(ctx context.Context, group, member string) (leave func(), err error) {
	return c.s.join(ctx, group, member)
}

// Members implements [projection.Membership] as [Checkpoints.Members]
// does.
func (c *PgxCheckpoints) Members(ctx context.Context, group string) ([]string, error) {
	return c.s.members(ctx, group)
}

// errNoName is the error of an empty group or member name.
var errNoName = errors.New("empty group or member name")

func (s *store[Tx]) join(ctx context.Context, group, member string) (func(), error) {
	if group == "" || member == "" {
		return nil, fmt.Errorf("sqlproj: join %q as %q: %w", group, member, errNoName)
	}
	key := group + membersInfix + member
	joined, cancel := context.WithCancel(ctx)
	held, release, err := s.lease(joined, key)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("sqlproj: join %q as %q: %w", group, member, err)
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
			s.cfg.logger.WarnContext(joined, "sqlproj: membership lost; joining again", "group", group, "member", member,
				"error", context.Cause(held))
			if held, release, err = s.lease(joined, key); err != nil {
				return // left while joining again
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

func (s *store[Tx]) members(ctx context.Context, group string) ([]string, error) {
	if group == "" {
		return nil, fmt.Errorf("sqlproj: members of %q: %w", group, errNoName)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	prefix := group + membersInfix
	rows, err := s.db.query(ctx, s.q.members, prefix, int64(utf8.RuneCountInString(prefix)))
	if err != nil {
		return nil, fmt.Errorf("sqlproj: members of %q: %w", group, withCtx(ctx, err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			key, host, instance string
			pid                 int64
		)
		if err := rows.Scan(&key, &host, &pid, &instance); err != nil {
			return nil, fmt.Errorf("sqlproj: members of %q: %w", group, err)
		}
		if s.dialect == SQLite && host == thisHost && gone(pid, instance) {
			continue // killed without leaving: nobody renews it
		}
		if member, ok := strings.CutPrefix(key, prefix); ok {
			out = append(out, member)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlproj: members of %q: %w", group, withCtx(ctx, err))
	}
	slices.Sort(out)
	return out, nil
}
