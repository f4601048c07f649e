// Package bustest is the conformance suite of the bus's transports: a
// test of a Watermill Pub/Sub (Kafka, Redis Streams, a transport of one's
// own) calls [Run], which runs buses over it and checks what the bus
// promises: commands and their metadata, request/reply and domain errors
// across buses, concurrent commands, event handler groups, unknown and
// undecodable messages, retries, the poison queue, idempotent handlers
// across a restart, and the relay's order and fields. It is to package bus
// what testing/fstest.TestFS is to io/fs, in the manner of Watermill's
// pubsub/tests.
//
//	func TestBusOnKafka(t *testing.T) {
//		bustest.Run(t, func(t *testing.T) bustest.Transport {
//			prefix := bustest.UniquePrefix()
//			pub, subscribers := newKafka(t, prefix) // deleted by t.Cleanup
//			return bustest.Transport{Publisher: pub, Subscribers: subscribers, TopicPrefix: prefix}
//		}, bustest.Features{GuaranteedOrder: true, ConcurrentHandling: true})
//	}
//
// Every transport of this module runs it from its own test: the
// in-process GoChannel, watermill-nats (JetStream), watermill-sql
// (PostgreSQL) and watermill-amqp (RabbitMQ) in package bus, and
// bus/jetstream; those that need a server skip with a message that names
// the variable to set (EVENTFOLD_TEST_NATS, EVENTFOLD_TEST_POSTGRES,
// EVENTFOLD_TEST_AMQP).
//
// # What a transport must do
//
// Each consumer name that [bus.SubscriberFactory] is given (a command
// type's handler, an event handler group, a bus's replies) must receive
// every message of the topics it subscribes to, once it subscribed, as a
// consumer group, durable consumer or queue of its own does on a broker.
// A message that its handler does not acknowledge (a nack) is delivered
// again. [Features] says what else the transport guarantees, and the
// suite checks it.
//
// # Helpers
//
// [Start] runs a bus until the test ends, for a transport's own tests
// beside the suite; [UniquePrefix] makes a topic prefix for one test.
//
// Set EVENTFOLD_TEST_VERBOSE to see the logs of the buses.
package bustest
