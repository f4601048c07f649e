package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite"

	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
)

// The default bus: Run stops with its context, Close closes the
// in-process transport, and no goroutine is left behind.
func TestRunAndCloseDefaultGoChannel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()))
	require.NoError(t, err)
	got := make(chan Deposit, 1)
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { got <- cmd; return nil }))
	stop := run(t, b)
	require.ErrorIs(t, b.Run(t.Context()), bus.ErrRunning)
	require.NoError(t, b.Send(t.Context(), Deposit{ID: "1"}))
	assert.Equal(t, Deposit{ID: "1"}, recv(t, got))
	stop()
	require.NoError(t, b.Close())
}

func TestSendWaitsUntilRunning(t *testing.T) {
	b, err := bus.New(commandTypes(), eventTypes(), bus.WithLogger(testLogger()))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { return nil }))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.Send(ctx, Deposit{}), context.DeadlineExceeded, "not running: nothing would receive it")
	require.ErrorIs(t, b.Publish(ctx, stored("MoneyDeposited", `{}`)), context.DeadlineExceeded)
}

// On the default transport a command handler that sends a command to its
// own topic would wait for itself: it gets ErrNestedSend instead. Commands
// of other topics, and sends from event handlers, are fine.
func TestNestedSendGoChannel(t *testing.T) {
	for _, shared := range []bool{false, true} {
		opts := []bus.Option{bus.WithLogger(testLogger())}
		if shared {
			opts = append(opts, bus.WithSharedCommandTopic())
		}
		b, err := bus.New(commandTypes(), eventTypes(), opts...)
		require.NoError(t, err)
		defer b.Close()
		errs := make(chan error, 2)
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error {
			errs <- b.Send(ctx, Deposit{ID: cmd.ID})
			errs <- b.Send(ctx, Review{ID: cmd.ID})
			return nil
		}))
		reviews := make(chan Review, 1)
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Review) error { reviews <- cmd; return nil }))
		run(t, b)
		require.NoError(t, b.Send(t.Context(), Deposit{ID: "1"}))
		require.ErrorIs(t, recv(t, errs), bus.ErrNestedSend)
		if shared {
			require.ErrorIs(t, recv(t, errs), bus.ErrNestedSend)
		} else {
			require.NoError(t, recv(t, errs))
			assert.Equal(t, Review{ID: "1"}, recv(t, reviews))
		}
	}
}

func TestNewValidatesOptions(t *testing.T) {
	_, err := bus.New(nil, eventTypes(),
		bus.WithTopicPrefix("a.b"),
		bus.WithRetry(-1, 0, 0),
		bus.WithHandlerTimeout(0),
		bus.WithRequestTimeout(-time.Second),
		bus.WithPoisonQueue(""),
		bus.WithLogger(nil),
		bus.WithTransport(nil, nil),
		bus.WithReplyTransport(nil, nil),
		bus.WithErrors(nil),
		bus.WithRemoteCommands(""),
	)
	require.ErrorIs(t, err, bus.ErrInvalidOption)
	for _, want := range []string{"nil registry", `topic prefix "a.b"`, "retry -1 attempts", "handler timeout", "request timeout",
		"empty poison topic", "nil logger", "nil publisher", "nil reply publisher", "nil error", "empty command name"} {
		assert.ErrorContains(t, err, want)
	}
	_, err = bus.New(commandTypes(), eventTypes(), bus.WithErrors(es.ErrStreamNotFound))
	assert.ErrorContains(t, err, "two registered errors")
}

type placeA struct{}
type placeB struct{}

// Command names become consumer names with other characters replaced:
// two names that would meet are refused.
func TestConsumerNamesDoNotCollide(t *testing.T) {
	cmds, err := es.NewRegistry(es.Type[placeA]("orders.Place"), es.Type[placeB]("orders_Place"))
	require.NoError(t, err)
	b, err := bus.New(cmds, eventTypes(), bus.WithLogger(testLogger()))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd placeA) error { return nil }))
	err = bus.HandleCommand(b, func(ctx context.Context, cmd placeB) error { return nil })
	require.ErrorIs(t, err, bus.ErrInvalidOption)
	assert.ErrorContains(t, err, `consumer name "command-orders_Place"`)
}

// Events stored under an old type name reach the handler of the type their
// upcaster turns them into.
func TestUpcastEventsRouteToCurrentType(t *testing.T) {
	events, err := es.NewRegistry(
		es.Type[Deposited]("MoneyDeposited"),
		es.Upcast("CashDeposited", func(e es.RecordedEvent) (es.RecordedEvent, error) {
			e.Type = "MoneyDeposited"
			return e, nil
		}),
	)
	require.NoError(t, err)
	b, err := bus.New(commandTypes(), events, bus.WithLogger(testLogger()))
	require.NoError(t, err)
	defer b.Close()
	got := make(chan Deposited, 1)
	require.NoError(t, bus.HandleEvent(b, "g", func(ctx context.Context, e Deposited) error { got <- e; return nil }))
	run(t, b)
	require.NoError(t, b.Publish(t.Context(), stored("CashDeposited", `{"amount":9}`)))
	assert.Equal(t, Deposited{Amount: 9}, recv(t, got))
	assert.Zero(t, b.Dropped())
}

// A command registry's upcaster rewrites a command's payload before its
// handler gets it; the upcaster sees the command's ID and metadata.
func TestUpcastCommands(t *testing.T) {
	seen := make(chan es.RecordedEvent, 1)
	commands, err := es.NewRegistry(
		es.Type[Deposit]("Deposit"),
		es.Upcast("Deposit", func(e es.RecordedEvent) (es.RecordedEvent, error) {
			seen <- e
			e.Data = []byte(`{"id":"upcast","amount":1}`)
			return e, nil
		}),
	)
	require.NoError(t, err)
	b, err := bus.New(commands, eventTypes(), bus.WithLogger(testLogger()))
	require.NoError(t, err)
	defer b.Close()
	got := make(chan Deposit, 1)
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { got <- cmd; return nil }))
	run(t, b)
	require.NoError(t, b.Send(es.WithMetadataValue(t.Context(), "tenant", "acme"), Deposit{ID: "1", Amount: 5}))
	assert.Equal(t, Deposit{ID: "upcast", Amount: 1}, recv(t, got))
	rec := recv(t, seen)
	assert.NotEqual(t, uuid.Nil, rec.ID)
	m, err := es.ParseMetadata(rec.Metadata)
	require.NoError(t, err)
	assert.Equal(t, "acme", m.Values["tenant"])
}
