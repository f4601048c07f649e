package bus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
)

// wait bounds every wait of the tests, generous for brokers on a busy
// machine; nothing waits for it unless something is broken.
const wait = 30 * time.Second

// run runs b until the test ends or stop is called, and returns once b
// runs.
func run(t *testing.T, b *bus.Bus) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				t.Errorf("the bus did not stop within %v", wait)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-b.Running():
	case err := <-done:
		t.Fatalf("Run returned before running: %v", err)
	case <-time.After(wait):
		t.Fatalf("the bus did not run within %v", wait)
	}
	return stop
}

// recv returns the next value of ch, failing the test if none comes.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("nothing received within %v", wait)
		panic("unreachable")
	}
}

// stored returns a stored event of type typ with payload data.
func stored(typ, data string) es.RecordedEvent {
	return es.RecordedEvent{ID: uuid.New(), Stream: "account-1", Type: typ, ContentType: es.ContentTypeJSON,
		Position: es.Position{Commit: 1, Prepare: 1}, Created: time.Now().UTC(), Data: []byte(data),
		Metadata: []byte(`{"$correlationId":"c-1","$causationId":"x-1"}`)}
}
