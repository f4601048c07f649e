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
	"github.com/eventfold/eventfold/bus/bustest"
)

// TestBus runs the transport suite (package bustest) on every transport
// of this package's tests: GoChannel always, the others when their
// variable names a server. Their setups are the reference for each.
func TestBus(t *testing.T) {
	for _, tr := range []struct {
		name     string
		new      func(t *testing.T) bustest.Transport
		features bustest.Features
	}{
		{"GoChannel", newGoChannel, bustest.Features{GuaranteedOrder: true, ConcurrentHandling: true}},
		{"NATSJetStream", newNATS, bustest.Features{GuaranteedOrder: true, ConcurrentHandling: true}},
		// watermill-sql's PostgreSQL schema reads the messages of
		// transactions older than every open one, and a subscriber keeps
		// its transaction open while the handler runs: no message is seen
		// while another is handled.
		{"PostgreSQL", newPostgres, bustest.Features{GuaranteedOrder: true}},
		{"RabbitMQ", newAMQP, bustest.Features{GuaranteedOrder: true, ConcurrentHandling: true}},
	} {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			bustest.Run(t, tr.new, tr.features)
		})
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("EVENTFOLD_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func wlog() watermill.LoggerAdapter { return watermill.NewSlogLogger(testLogger()) }

func newGoChannel(t *testing.T) bustest.Transport {
	gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, wlog())
	t.Cleanup(func() { _ = gc.Close() })
	return bustest.Transport{Publisher: gc, Subscribers: bus.Shared(gc)}
}

func env(t *testing.T, name, what string) string {
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("%s is not set: skipping the %s transport (set it to the server's URL, as .ci/run does)", name, what)
	}
	return v
}

func newNATS(t *testing.T) bustest.Transport {
	url := env(t, "EVENTFOLD_TEST_NATS", "NATS JetStream")
	prefix := bustest.UniquePrefix()
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
	return bustest.Transport{Publisher: pub, Subscribers: sub, ReplyPublisher: replyPub, ReplySubscribers: replySub, TopicPrefix: prefix}
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

func newPostgres(t *testing.T) bustest.Transport {
	url := env(t, "EVENTFOLD_TEST_POSTGRES", "PostgreSQL")
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	prefix := bustest.UniquePrefix()
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
	return bustest.Transport{Publisher: pub, Subscribers: sub, TopicPrefix: prefix}
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

func newAMQP(t *testing.T) bustest.Transport {
	url := env(t, "EVENTFOLD_TEST_AMQP", "RabbitMQ")
	pub, err := wamqp.NewPublisher(amqpConfig(url, nil), wlog())
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	sub := func(consumer string) (message.Subscriber, error) {
		return wamqp.NewSubscriber(amqpConfig(url, wamqp.GenerateQueueNameTopicNameWithSuffix(consumer)), wlog())
	}
	return bustest.Transport{Publisher: pub, Subscribers: sub}
}
