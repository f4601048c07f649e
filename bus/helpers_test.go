package bus_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold/bus/bustest"
	"github.com/eventfold/eventfold/es"
)

// wait bounds every wait of the tests, generous for brokers on a busy
// machine; nothing waits for it unless something is broken.
const wait = 30 * time.Second

// run runs b until the test ends or stop is called, and returns once b
// runs.
var run = bustest.Start

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
