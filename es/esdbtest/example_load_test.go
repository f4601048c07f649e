package esdbtest_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// ExampleServer_Load loads a dataset, one event a line, keeping the IDs,
// data, positions and created times it gives.
func ExampleServer_Load() {
	srv, err := esdbtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	dataset := `{"stream":"order-1","type":"OrderPlaced","id":"5f1c2a40-8a8e-4d6a-9a55-0c1e6f3b7a10","data":{"total":3}}
{"stream":"blob-9","type":"Chunk","contentType":"application/octet-stream","dataBase64":"AAEC"}
{"stream":"order-1","type":"OrderPaid","revision":1,"position":4096,"created":"2020-01-12T18:16:26.2459170Z"}
`
	if err := srv.Load(strings.NewReader(dataset)); err != nil {
		log.Fatal(err)
	}
	for _, ev := range srv.Events("order-1") {
		fmt.Printf("%s %d %s %q\n", ev.Stream, ev.Revision, ev.Type, ev.Data)
	}
	paid := srv.Events("order-1")[1]
	fmt.Println(paid.Position, paid.Created.UTC().Format("2006-01-02T15:04:05.000000Z"))

	err = srv.Load(strings.NewReader(`{"stream":"order-1","type":"OrderShipped","revision":7}`))
	fmt.Println(err)
	// Output:
	// order-1 0 OrderPlaced "{\"total\":3}"
	// order-1 1 OrderPaid ""
	// 4096 2020-01-12T18:16:26.245917Z
	// esdbtest: load: line 1: field "revision": 7 where the stream's next revision is 2
}
