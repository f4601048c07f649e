package eventstoredb_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/google/uuid"
)

// The benchmarks measure the adapter's own cost over the bare v4 client,
// both talking to the in-process server over loopback gRPC. The figures say
// nothing about EventStoreDB itself, whose storage is not involved.

func rawClient(b *testing.B, srv *esdbtest.Server) *esdb.Client {
	b.Helper()
	return connect(b, srv.ConnectionString())
}

// connect returns a bare v4 client on a connection string.
func connect(b *testing.B, conn string) *esdb.Client {
	b.Helper()
	cfg, err := esdb.ParseConnectionString(conn)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Logger = esdb.NoopLogging()
	client, err := esdb.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Close() })
	return client
}

func BenchmarkAppend(b *testing.B) {
	srv := esdbtest.New(b)
	client := rawClient(b, srv)
	store := open(b, srv.ConnectionString())
	data := []byte(`{"orderId":"42","customerId":"c-7","items":[{"productId":"p-1","quantity":2,"unitPrice":1250}]}`)
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d/client", batch), func(b *testing.B) {
			ctx := b.Context()
			stream := "bench-" + uuid.NewString()
			events := make([]esdb.EventData, batch)
			for b.Loop() {
				for i := range events {
					events[i] = esdb.EventData{EventID: uuid.New(), EventType: "OrderPlaced", ContentType: esdb.ContentTypeJson, Data: data}
				}
				if _, err := client.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{}, events...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(fmt.Sprintf("batch=%d/adapter", batch), func(b *testing.B) {
			ctx := b.Context()
			stream := "bench-" + uuid.NewString()
			events := make([]es.EventData, batch)
			for b.Loop() {
				for i := range events {
					events[i] = es.EventData{ID: uuid.New(), Type: "OrderPlaced", Data: data}
				}
				if _, err := store.Append(ctx, stream, es.Any, events...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkReadStream(b *testing.B) {
	const n = 10_000
	srv := esdbtest.New(b)
	client := rawClient(b, srv)
	store := open(b, srv.ConnectionString())
	stream := "bench-" + uuid.NewString()
	batch := make([]esdbtest.Event, 0, 1000)
	for i := range n {
		batch = append(batch, esdbtest.Event{Type: "OrderPlaced", Data: fmt.Appendf(nil, `{"n":%d}`, i)})
		if len(batch) == cap(batch) {
			if err := srv.Seed(stream, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Run("client", func(b *testing.B) {
		ctx := b.Context()
		for b.Loop() {
			rs, err := client.ReadStream(ctx, stream, esdb.ReadStreamOptions{From: esdb.Start{}}, n)
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for {
				_, err := rs.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				got++
			}
			rs.Close()
			if got != n {
				b.Fatalf("read %d events", got)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("adapter", func(b *testing.B) {
		ctx := b.Context()
		for b.Loop() {
			got := 0
			for _, err := range store.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
				if err != nil {
					b.Fatal(err)
				}
				got++
			}
			if got != n {
				b.Fatalf("read %d events", got)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
