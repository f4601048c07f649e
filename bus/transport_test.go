package bus_test

import (
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/bus"
)

// A transport is a Watermill Pub/Sub for one test: a publisher, and the
// subscriber of each consumer. Topics are unique to the test (prefix).
type transport struct {
	pub    message.Publisher
	sub    func(consumer string) (message.Subscriber, error)
	prefix string
	// replies, if set, is the transport of replies (bus.WithReplyTransport).
	replies *transport
	// serial, if set, says why the transport handles one message at a time
	// whatever the number of topics and subscriptions.
	serial string
}

// transports are the Pub/Subs the suite runs on, in the order of its
// subtests.
var transports = []struct {
	name string
	new  func(t *testing.T) transport
}{
	{"GoChannel", newGoChannel},
	{"NATSJetStream", newNATS},
	{"PostgreSQL", newPostgres},
	{"RabbitMQ", newAMQP},
}

func testLogger() *slog.Logger {
	if os.Getenv("EVENTFOLD_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func wlog() watermill.LoggerAdapter { return watermill.NewSlogLogger(testLogger()) }

func uniquePrefix() string { return "t" + strings.ToLower(watermill.NewShortUUID()) + "-" }

func newGoChannel(t *testing.T) transport {
	gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, wlog())
	t.Cleanup(func() { _ = gc.Close() })
	return transport{pub: gc, sub: bus.Shared(gc), prefix: uniquePrefix()}
}

func env(t *testing.T, name, what string) string {
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("%s is not set: skipping the %s transport (set it to the server's URL, as .ci/run does)", name, what)
	}
	return v
}

func newNATS(t *testing.T) transport {
	url := env(t, "EVENTFOLD_TEST_NATS", "NATS JetStream")
	prefix := uniquePrefix()
	js := wnats.JetStreamConfig{AutoProvision: true}
	pub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: url, Marshaler: &wnats.NATSMarshaler{}, JetStream: js}, wlog())
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = pub.Close()
		deleteStreams(t, url, prefix)
	})
	sub := func(consumer string) (message.Subscriber, error) {
		js := js
		js.DurablePrefix = consumer
		js.DurableCalculator = func(prefix, topic string) string { return prefix + "_" + topic }
		js.SubscribeOptions = []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit()}
		return wnats.NewSubscriber(wnats.SubscriberConfig{
			URL:              url,
			SubscribersCount: 1,
			CloseTimeout:     5 * time.Second,
			AckWaitTimeout:   30 * time.Second,
			SubscribeTimeout: 10 * time.Second,
			Unmarshaler:      &wnats.NATSMarshaler{},
			JetStream:        js,
		}, wlog())
	}
	// Replies on core NATS: no stream for each bus instance's replies.
	core := wnats.JetStreamConfig{Disabled: true}
	replyPub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: url, Marshaler: &wnats.NATSMarshaler{}, JetStream: core}, wlog())
	require.NoError(t, err)
	t.Cleanup(func() { _ = replyPub.Close() })
	replySub := func(consumer string) (message.Subscriber, error) {
		return wnats.NewSubscriber(wnats.SubscriberConfig{
			URL: url, SubscribersCount: 1, CloseTimeout: 5 * time.Second, AckWaitTimeout: 30 * time.Second,
			SubscribeTimeout: 10 * time.Second, Unmarshaler: &wnats.NATSMarshaler{}, JetStream: core,
		}, wlog())
	}
	return transport{pub: pub, sub: sub, prefix: prefix, replies: &transport{pub: replyPub, sub: replySub}}
}

// deleteStreams deletes the JetStream streams of a test's topics.
func deleteStreams(t *testing.T, url, prefix string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	jsm, err := nc.JetStream()
	if err != nil {
		return
	}
	for name := range jsm.StreamNames() {
		if strings.HasPrefix(name, prefix) {
			_ = jsm.DeleteStream(name)
		}
	}
}

func newPostgres(t *testing.T) transport {
	url := env(t, "EVENTFOLD_TEST_POSTGRES", "PostgreSQL")
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	prefix := uniquePrefix()
	t.Cleanup(func() {
		dropTables(t, db, prefix)
		_ = db.Close()
	})
	pub, err := wsql.NewPublisher(wsql.BeginnerFromStdSQL(db), wsql.PublisherConfig{
		SchemaAdapter: wsql.DefaultPostgreSQLSchema{}, AutoInitializeSchema: true}, wlog())
	require.NoError(t, err)
	sub := func(consumer string) (message.Subscriber, error) {
		return wsql.NewSubscriber(wsql.BeginnerFromStdSQL(db), wsql.SubscriberConfig{
			ConsumerGroup:    consumer,
			SchemaAdapter:    wsql.DefaultPostgreSQLSchema{},
			OffsetsAdapter:   wsql.DefaultPostgreSQLOffsetsAdapter{},
			InitializeSchema: true,
			PollInterval:     10 * time.Millisecond,
			ResendInterval:   10 * time.Millisecond,
			RetryInterval:    10 * time.Millisecond,
		}, wlog())
	}
	// The PostgreSQL schema reads the messages of transactions older than
	// every open one, and a subscriber keeps its transaction open while
	// the handler runs: no message is seen while another is handled.
	return transport{pub: pub, sub: sub, prefix: prefix,
		serial: "watermill-sql's PostgreSQL schema hides new messages while a transaction is open"}
}

// dropTables drops the message and offset tables of a test's topics.
func dropTables(t *testing.T, db *sql.DB, prefix string) {
	rows, err := db.Query(`SELECT tablename FROM pg_tables WHERE tablename LIKE $1 OR tablename LIKE $2`,
		"watermill_"+prefix+"%", "watermill_offsets_"+prefix+"%")
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	var tables []string
	for rows.Next() {
		var name string
		if rows.Scan(&name) == nil {
			tables = append(tables, name)
		}
	}
	_ = rows.Close()
	for _, name := range tables {
		_, _ = db.Exec(fmt.Sprintf(`DROP TABLE IF EXISTS %q`, name))
	}
}

// amqpConfig is the RabbitMQ configuration of the tests: a fanout exchange
// per topic and a queue per consumer, deleted when no longer used.
func amqpConfig(url string, queueName wamqp.QueueNameGenerator) wamqp.Config {
	cfg := wamqp.NewNonDurablePubSubConfig(url, queueName)
	cfg.Exchange.AutoDeleted = true
	cfg.Queue.AutoDelete = true
	// A queue whose consumer never started is not auto-deleted: expire it.
	cfg.Queue.Arguments = map[string]any{"x-expires": 60_000}
	return cfg
}

func newAMQP(t *testing.T) transport {
	url := env(t, "EVENTFOLD_TEST_AMQP", "RabbitMQ")
	pub, err := wamqp.NewPublisher(amqpConfig(url, nil), wlog())
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	sub := func(consumer string) (message.Subscriber, error) {
		return wamqp.NewSubscriber(amqpConfig(url, wamqp.GenerateQueueNameTopicNameWithSuffix(consumer)), wlog())
	}
	return transport{pub: pub, sub: sub, prefix: uniquePrefix()}
}
