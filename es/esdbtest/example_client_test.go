package esdbtest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// Example starts a server without a testing.T, appends two events with the
// v4 client and reads them back.
func Example() {
	srv, err := esdbtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	cfg, err := esdb.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		log.Fatal(err)
	}
	cfg.Logger = esdb.NoopLogging()
	client, err := esdb.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx := context.Background()
	res, err := client.AppendToStream(ctx, "order-42", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}},
		esdb.EventData{EventType: "OrderPlaced", ContentType: esdb.ContentTypeJson, Data: []byte(`{"total":10}`)},
		esdb.EventData{EventType: "OrderShipped", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("last revision:", res.NextExpectedVersion)

	stream, err := client.ReadStream(ctx, "order-42", esdb.ReadStreamOptions{}, 10)
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	for {
		ev, recvErr := stream.Recv()
		if recvErr != nil {
			break // io.EOF at the end
		}
		fmt.Println(ev.OriginalEvent().EventNumber, ev.OriginalEvent().EventType, string(ev.OriginalEvent().Data))
	}
	// Output:
	// last revision: 1
	// 0 OrderPlaced {"total":10}
	// 1 OrderShipped {}
}
