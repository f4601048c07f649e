package sqlproj_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// The leases of one Checkpoints, renewed together, are kept past several
// time-to-lives, and each is still lost on its own: one whose row another
// took over ends, the others stay held.
func TestLeasesRenewedTogether(t *testing.T) {
	onEach(t, testLeasesRenewedTogether[*sql.Tx], testLeasesRenewedTogether[pgx.Tx])
}

func testLeasesRenewedTogether[Tx any](t *testing.T, b backend[Tx]) {
	ctx := t.Context()
	db, open := b.open(t)
	const ttl = 300 * time.Millisecond
	cps := open.must(t, sqlproj.WithLeaseTTL(ttl), sqlproj.WithLeaseHolder("a"))
	other := open.must(t, sqlproj.WithLeaseTTL(ttl), sqlproj.WithLeaseHolder("b"), sqlproj.WithLeasePoll(10*time.Millisecond))

	var held []context.Context
	for i := range 4 {
		h, release, err := cps.Lease(ctx, fmt.Sprintf("p/v1/p%d", i))
		require.NoError(t, err)
		defer release()
		held = append(held, h)
	}
	leave, err := cps.(projection.Membership).Join(ctx, "svc", "a")
	require.NoError(t, err)
	defer leave()

	short, cancel := context.WithTimeout(ctx, 4*ttl)
	_, _, err = other.Lease(short, "p/v1/p2")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "renewed past several time-to-lives")

	// Another takes p1's row over (as after a partition), behind a's back.
	_, err = db.ExecContext(ctx, `UPDATE eventfold_leases SET holder = 'b', token = token + 1 WHERE key = 'p/v1/p1'`)
	require.NoError(t, err)
	select {
	case <-held[1].Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the lease taken over was not lost")
	}
	require.ErrorIs(t, context.Cause(held[1]), projection.ErrLeaseLost)

	short, cancel = context.WithTimeout(ctx, 2*ttl)
	_, _, err = other.Lease(short, "p/v1/p3")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "the others are still renewed")
	for i, h := range held {
		if i != 1 {
			assert.NoError(t, h.Err(), i)
		}
	}
	members, err := other.(projection.Membership).Members(ctx, "svc")
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, members)
}
