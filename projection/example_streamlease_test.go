package projection_test

import (
	"context"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// Two replicas of a service keep their checkpoints, leases and membership
// in the event store itself (on EventStoreDB, where there are no locks):
// they see each other through Members, one holds the lease of a
// projection's partition, and the other takes it as soon as it is given
// back.
func ExampleStreamCheckpoints_Join() {
	ctx := context.Background()
	store := memstore.MustNew()
	replica1, _ := projection.NewStreamCheckpoints(store, projection.WithStreamLeaseHolder("replica-1"),
		projection.WithStreamLeaseTTL(5*time.Second))
	replica2, _ := projection.NewStreamCheckpoints(store, projection.WithStreamLeaseHolder("replica-2"),
		projection.WithStreamLeaseTTL(5*time.Second))

	leave1, err := replica1.Join(ctx, "orders-service", "replica-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leave1()
	leave2, err := replica2.Join(ctx, "orders-service", "replica-2")
	if err != nil {
		fmt.Println(err)
		return
	}
	members, _ := replica1.Members(ctx, "orders-service")
	fmt.Println("members:", members)

	_, release, err := replica1.Lease(ctx, "audit/v1/p0")
	if err != nil {
		fmt.Println(err)
		return
	}
	holder, _ := replica2.LeaseHolder(ctx, "audit/v1/p0")
	fmt.Println("holder:", holder)
	release() // given back: free at once

	held, release2, err := replica2.Lease(ctx, "audit/v1/p0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer release2()
	holder, _ = replica1.LeaseHolder(ctx, "audit/v1/p0")
	fmt.Println("holder:", holder, "lost:", held.Err() != nil)

	leave2()
	members, _ = replica1.Members(ctx, "orders-service")
	fmt.Println("members:", members)
	// Output:
	// members: [replica-1 replica-2]
	// holder: replica-1
	// holder: replica-2 lost: false
	// members: [replica-1]
}
