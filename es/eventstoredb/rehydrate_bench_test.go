package eventstoredb_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/google/uuid"
)

// The account of the rehydration benchmark: an opening event, then deposits.
type (
	accountEvent interface{ isAccountEvent() }
	opened       struct {
		Owner string `json:"owner"`
	}
	deposited struct {
		Amount int `json:"amount"`
	}
	account struct {
		Owner   string
		Balance int
		Events  int
	}
)

func (opened) isAccountEvent()    {}
func (deposited) isAccountEvent() {}

func evolveAccount(a account, e accountEvent) account {
	switch e := e.(type) {
	case opened:
		a.Owner = e.Owner
	case deposited:
		a.Balance += e.Amount
	}
	a.Events++
	return a
}

var accounts = aggregate.Definition[account, accountEvent]{Category: "account", Evolve: evolveAccount}

// decodeAccountEvent is the bare loops' decoding: a type switch on the
// event type and encoding/json, as a hand-written reader would do it.
func decodeAccountEvent(typ string, data []byte) (accountEvent, error) {
	switch typ {
	case "AccountOpened":
		var v opened
		err := json.Unmarshal(data, &v)
		return v, err
	case "MoneyDeposited":
		var v deposited
		err := json.Unmarshal(data, &v)
		return v, err
	}
	return nil, fmt.Errorf("unknown event type %q", typ)
}

// seedAccount appends an opening event and n deposits to the stream of
// account id.
func seedAccount(b *testing.B, store es.Store, id string, n int) {
	b.Helper()
	ctx := b.Context()
	stream := accounts.Stream(id)
	if _, err := store.Append(ctx, stream, es.NoStream, es.EventData{Type: "AccountOpened", Data: []byte(`{"owner":"ada"}`)}); err != nil {
		b.Fatal(err)
	}
	batch := make([]es.EventData, 0, 1000)
	for i := range n {
		batch = append(batch, es.EventData{Type: "MoneyDeposited", Data: fmt.Appendf(nil, `{"amount":%d}`, i%100)})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := store.Append(ctx, stream, es.Any, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkRehydrate loads a 10,001-event aggregate four ways in one run:
// through aggregate.Repository on the adapter (talking to the in-process
// esdbtest server over loopback gRPC), with a bare loop on the v4 client
// reading the same stream from the same server and decoding with a type
// switch, and the same pair on memstore.
//
// The in-process server's allocations count in the esdb figures. To leave
// them out, run the server in a process of its own and point the benchmark
// at it with EVENTFOLD_TEST_ESDB (a real EventStoreDB node works too):
//
//	go run ./es/esdbtest/cmd/esdbtest -addr 127.0.0.1:2113 &
//	EVENTFOLD_TEST_ESDB='esdb://127.0.0.1:2113?tls=false' go test ./es/eventstoredb -run '^$' -bench Rehydrate -benchmem
func BenchmarkRehydrate(b *testing.B) {
	const n = 10_000
	types, err := es.NewRegistry(es.Type[opened]("AccountOpened"), es.Type[deposited]("MoneyDeposited"))
	if err != nil {
		b.Fatal(err)
	}
	conn := os.Getenv("EVENTFOLD_TEST_ESDB")
	if conn == "" {
		conn = esdbtest.New(b).ConnectionString()
	}
	client := connect(b, conn)
	store := open(b, conn)
	id := uuid.NewString() // a server of its own may hold earlier runs' streams
	seedAccount(b, store, id, n)
	mem := memstore.MustNew()
	seedAccount(b, mem, id, n)
	stream := accounts.Stream(id)

	// measure runs the benchmark's loop and reports per event: the wall
	// time, and the CPU time of the whole process (which, on a shared
	// machine, moves less with the load than the wall time does; it
	// includes the garbage collector, and the in-process server when there
	// is one).
	measure := func(b *testing.B, loop func()) {
		b.ReportAllocs()
		cpu0, cpuOK := processCPU()
		loop()
		cpu1, _ := processCPU()
		events := float64((n + 1) * b.N)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
		if cpuOK {
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/events, "cpu-ns/event")
		}
		b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	}
	check := func(b *testing.B, a account) {
		if a.Events != n+1 || a.Owner != "ada" {
			b.Fatalf("folded %d events, owner %q", a.Events, a.Owner)
		}
	}
	repository := func(store es.Store) func(b *testing.B) {
		return func(b *testing.B) {
			repo, err := aggregate.New(store, types, accounts)
			if err != nil {
				b.Fatal(err)
			}
			measure(b, func() {
				for b.Loop() {
					a, _, err := repo.Load(b.Context(), id)
					if err != nil {
						b.Fatal(err)
					}
					check(b, a)
				}
			})
		}
	}

	b.Run("esdb/client", func(b *testing.B) {
		ctx := b.Context()
		measure(b, func() {
			for b.Loop() {
				rs, err := client.ReadStream(ctx, stream, esdb.ReadStreamOptions{From: esdb.Start{}}, n+1)
				if err != nil {
					b.Fatal(err)
				}
				var a account
				for {
					ev, err := rs.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					e, err := decodeAccountEvent(ev.Event.EventType, ev.Event.Data)
					if err != nil {
						b.Fatal(err)
					}
					a = evolveAccount(a, e)
				}
				rs.Close()
				check(b, a)
			}
		})
	})
	b.Run("esdb/repository", repository(store))
	b.Run("memstore/loop", func(b *testing.B) {
		ctx := b.Context()
		measure(b, func() {
			for b.Loop() {
				var a account
				for rec, err := range mem.ReadStream(ctx, stream, es.ReadStreamOptions{}) {
					if err != nil {
						b.Fatal(err)
					}
					e, err := decodeAccountEvent(rec.Type, rec.Data)
					if err != nil {
						b.Fatal(err)
					}
					a = evolveAccount(a, e)
				}
				check(b, a)
			}
		})
	})
	b.Run("memstore/repository", repository(mem))
}
