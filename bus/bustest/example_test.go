package bustest_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/bus/bustest"
)

// newGoChannel returns the transport of one test of the suite: an
// in-process GoChannel that keeps order, closed when the test ends. A
// broker's would make a consumer group, durable consumer or queue per
// consumer name, and delete what the test left under its TopicPrefix.
func newGoChannel(t *testing.T) bustest.Transport {
	pubsub := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	t.Cleanup(func() { _ = pubsub.Close() })
	return bustest.Transport{Publisher: pubsub, Subscribers: bus.Shared(pubsub), TopicPrefix: bustest.UniquePrefix()}
}

// A transport proves itself with a test that runs the suite, in a
// _test.go file of its package; this package's TestGoChannel is this one.
// (An example cannot take a *testing.T: this one only compiles.)
func ExampleRun() {
	testGoChannel := func(t *testing.T) {
		bustest.Run(t, newGoChannel, bustest.Features{GuaranteedOrder: true, ConcurrentHandling: true})
	}
	_ = testGoChannel
}
