package sqlproj_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite"

	"github.com/eventfold/eventfold/projection/sqlproj"
)

// openCheckpoints opens the SQLite file at path as one process would, with
// the checkpoint store of a lease holder.
func openCheckpoints(ctx context.Context, path, holder string) (*sql.DB, *sqlproj.Checkpoints) {
	db, err := sql.Open("sqlite", "file:"+path+
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		panic(err)
	}
	cps, err := sqlproj.New(ctx, db, sqlproj.SQLite,
		sqlproj.WithLeaseHolder(holder), sqlproj.WithLeaseTTL(10*time.Second), sqlproj.WithLeasePoll(10*time.Millisecond))
	if err != nil {
		panic(err)
	}
	return db, cps
}

// Two processes share one database (here, two pools on one SQLite file):
// the first holds the lease of a projection version, the second sees who
// holds it and waits in vain; once the first gives it back, the second
// takes it. A runner does all this by itself (projection.Runner.Run).
func ExampleCheckpoints_Lease() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlproj-lease")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.db")
	db1, serve := openCheckpoints(ctx, path, "orders serve")
	defer db1.Close()
	db2, rebuild := openCheckpoints(ctx, path, "orders replay")
	defer db2.Close()

	held, release, err := serve.Lease(ctx, "order-summaries/v1")
	if err != nil {
		panic(err)
	}
	holder, _ := rebuild.LeaseHolder(ctx, "order-summaries/v1")
	fmt.Println("held by:", holder)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, _, err = rebuild.Lease(short, "order-summaries/v1")
	cancel()
	fmt.Println("the second waits:", errors.Is(err, context.DeadlineExceeded))

	release()
	fmt.Println("the first's lease context ended:", held.Err() != nil)
	_, release2, err := rebuild.Lease(ctx, "order-summaries/v1")
	if err != nil {
		panic(err)
	}
	defer release2()
	holder, _ = serve.LeaseHolder(ctx, "order-summaries/v1")
	fmt.Println("held by:", holder)
	// Output:
	// held by: orders serve
	// the second waits: true
	// the first's lease context ended: true
	// held by: orders replay
}
