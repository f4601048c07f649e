package esdbtest_test

import (
	"fmt"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// BenchmarkAppend appends one event per call through the v4 client.
func BenchmarkAppend(b *testing.B) {
	srv := esdbtest.New(b)
	c := newClient(b, srv)
	ev := event("Tested")
	ev.EventID = [16]byte{} // the client then makes a new ID per append
	for i := 0; b.Loop(); i++ {
		if _, err := c.AppendToStream(b.Context(), fmt.Sprintf("s-%d", i%100), esdb.AppendToStreamOptions{}, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadStream reads a 1000-event stream through the v4 client.
func BenchmarkReadStream(b *testing.B) {
	srv := esdbtest.New(b)
	seed := make([]esdbtest.Event, 1000)
	for i := range seed {
		seed[i] = esdbtest.Event{Type: "Tested", Data: []byte(`{"n":1}`)}
	}
	if err := srv.Seed("s", seed...); err != nil {
		b.Fatal(err)
	}
	c := newClient(b, srv)
	for b.Loop() {
		evs, err := readStream(b, c, "s", esdb.ReadStreamOptions{}, 1000)
		if err != nil || len(evs) != 1000 {
			b.Fatal(err, len(evs))
		}
	}
}
