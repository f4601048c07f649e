package bus_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// TestBus runs the suite on every transport: GoChannel always, the others
// when their variable names a server.
func TestBus(t *testing.T) {
	vars := map[string]string{"NATSJetStream": "EVENTFOLD_TEST_NATS", "PostgreSQL": "EVENTFOLD_TEST_POSTGRES", "RabbitMQ": "EVENTFOLD_TEST_AMQP"}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			if v := vars[tr.name]; v != "" && os.Getenv(v) == "" {
				t.Skipf("%s is not set: skipping the %s transport (set it to the server's URL, as .ci/run does)", v, tr.name)
			}
			t.Parallel()
			runSuite(t, tr.new)
		})
	}
}

func runSuite(t *testing.T, newTransport func(t *testing.T) transport) {
	t.Run("SendReachesHandler", func(t *testing.T) {
		b := newBus(t, newTransport(t))
		type got struct {
			cmd Deposit
			md  es.Metadata
			id  string
		}
		ch := make(chan got, 2)
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error {
			ch <- got{cmd, es.MetadataFromContext(ctx), cqrs.OriginalMessageFromCtx(ctx).UUID}
			return nil
		}))
		run(t, b)

		ctx := es.WithMetadataValue(es.WithCorrelationID(t.Context(), "corr-1"), "tenant", "acme")
		require.NoError(t, b.Send(ctx, Deposit{ID: "1", Amount: 5}))
		g := recv(t, ch)
		assert.Equal(t, Deposit{ID: "1", Amount: 5}, g.cmd)
		assert.Equal(t, "corr-1", g.md.CorrelationID, "the caller's correlation ID")
		assert.Equal(t, map[string]string{"tenant": "acme"}, g.md.Values, "other metadata travels too")
		assert.Equal(t, g.id, g.md.CausationID, "the command's ID is the causation of what it causes")

		require.NoError(t, b.Send(t.Context(), Deposit{ID: "1", Amount: 6}))
		g = recv(t, ch)
		assert.Equal(t, g.id, g.md.CorrelationID, "a new chain is correlated by its first command's ID")
	})

	t.Run("RequestReturnsResult", func(t *testing.T) {
		b := newBus(t, newTransport(t))
		require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, cmd Deposit) (Balance, error) {
			return Balance{Balance: cmd.Amount * 2}, nil
		}))
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Withdraw) error { return nil }))
		run(t, b)

		got, err := bus.Request[Balance](t.Context(), b, Deposit{ID: "1", Amount: 21})
		require.NoError(t, err)
		assert.Equal(t, Balance{Balance: 42}, got)
		_, err = bus.Request[struct{}](t.Context(), b, Withdraw{ID: "1"})
		require.NoError(t, err, "a command handler answers requests with no result")
	})

	t.Run("ConcurrentRequests", func(t *testing.T) {
		tr := newTransport(t)
		handler := newBus(t, tr)
		require.NoError(t, bus.HandleRequest(handler, func(ctx context.Context, cmd Deposit) (Balance, error) {
			return Balance{Balance: cmd.Amount}, nil
		}))
		run(t, handler)
		caller := newBus(t, tr, bus.WithRemoteCommands("Deposit"))
		run(t, caller)

		const n = 20
		errs := make(chan error, n)
		for i := range n {
			b := handler
			if i%2 == 1 {
				b = caller
			}
			go func() {
				got, err := bus.Request[Balance](t.Context(), b, Deposit{ID: "1", Amount: i})
				if err == nil && got.Balance != i {
					err = errors.New("a reply went to the wrong request")
				}
				errs <- err
			}()
		}
		for range n {
			require.NoError(t, recv(t, errs))
		}
	})

	t.Run("CommandConcurrency", func(t *testing.T) {
		tr := newTransport(t)
		handler := newBus(t, tr, bus.WithCommandConcurrency(3))
		k := 3
		if tr.serial != "" {
			t.Logf("not handled at once: %s", tr.serial)
			k = 1
		}
		require.NoError(t, bus.HandleCommand(handler, meet(k)))
		run(t, handler)
		for _, err := range requestAll(t, handler, 3) {
			require.NoError(t, err, "three commands of one type handled at once")
		}
		caller := newBus(t, tr, bus.WithRemoteCommands("Deposit"), bus.WithCommandConcurrency(3))
		run(t, caller)
		for _, err := range requestAll(t, caller, 3) {
			require.NoError(t, err, "another bus with the same concurrency reaches every topic")
		}
	})

	t.Run("DomainErrorIdentity", func(t *testing.T) {
		tr := newTransport(t)
		handler := newBus(t, tr)
		herr := errors.New("no")
		require.NoError(t, bus.HandleCommand(handler, func(ctx context.Context, cmd Withdraw) error {
			herr = errorsJoin(cmd)
			return herr
		}))
		run(t, handler)

		// On the same bus, the caller gets the handler's error value.
		_, err := bus.Request[struct{}](t.Context(), handler, Withdraw{ID: "1", Amount: 5})
		require.Error(t, err)
		assert.True(t, err == herr, "same error value: %v", err)

		// From another bus, it keeps its message and its identity.
		caller := newBus(t, tr, bus.WithRemoteCommands("Withdraw"))
		run(t, caller)
		_, err = bus.Request[struct{}](t.Context(), caller, Withdraw{ID: "1", Amount: 7})
		require.ErrorIs(t, err, ErrInsufficientFunds)
		assert.Equal(t, "account: insufficient funds: balance 0, withdrawing 7", err.Error())
		var he *bus.HandlerError
		assert.ErrorAs(t, err, &he)
		assert.NotErrorIs(t, err, es.ErrWrongExpectedVersion)
	})

	t.Run("RequestTimeout", func(t *testing.T) {
		b := newBus(t, newTransport(t), bus.WithRequestTimeout(300*time.Millisecond))
		deadlines := make(chan bool, 1)
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error {
			_, ok := ctx.Deadline()
			deadlines <- ok
			<-ctx.Done() // a slow handler that respects its context
			return ctx.Err()
		}))
		run(t, b)

		start := time.Now()
		_, err := bus.Request[struct{}](t.Context(), b, Deposit{ID: "1"})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 10*time.Second)
		assert.True(t, recv(t, deadlines), "the handler gets the caller's deadline")
	})

	t.Run("NoHandler", func(t *testing.T) {
		b := newBus(t, newTransport(t))
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { return nil }))
		// Not running: the error comes at once, before waiting for the bus.
		require.ErrorIs(t, b.Send(t.Context(), Unhandled{}), bus.ErrNoHandler)
		_, err := bus.Request[struct{}](t.Context(), b, Unhandled{})
		require.ErrorIs(t, err, bus.ErrNoHandler)
		assert.EqualError(t, err, `bus: no handler for command "Unhandled"`)
		require.ErrorIs(t, b.Send(t.Context(), struct{ X int }{}), bus.ErrNoHandler)
		require.ErrorIs(t, b.Send(t.Context(), &Unhandled{}), bus.ErrNoHandler)
	})

	t.Run("DuplicateHandlers", func(t *testing.T) {
		b := newBus(t, newTransport(t))
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { return nil }))
		require.ErrorIs(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { return nil }), bus.ErrDuplicateHandler)
		require.ErrorIs(t, bus.HandleRequest(b, func(ctx context.Context, cmd Deposit) (Balance, error) { return Balance{}, nil }), bus.ErrDuplicateHandler)
		require.NoError(t, bus.HandleEvent(b, "g1", func(ctx context.Context, e Deposited) error { return nil }))
		require.ErrorIs(t, bus.HandleEvent(b, "g1", func(ctx context.Context, e Deposited) error { return nil }), bus.ErrDuplicateHandler)
		require.NoError(t, bus.HandleEvent(b, "g2", func(ctx context.Context, e Deposited) error { return nil }))
		require.ErrorIs(t, bus.HandleEvent(b, "g.1", func(ctx context.Context, e Deposited) error { return nil }), bus.ErrInvalidOption)
		require.ErrorIs(t, bus.HandleCommand(b, func(ctx context.Context, cmd struct{}) error { return nil }), bus.ErrInvalidOption)
		run(t, b)
		require.ErrorIs(t, bus.HandleCommand(b, func(ctx context.Context, cmd Withdraw) error { return nil }), bus.ErrRunning)
	})

	t.Run("UnknownTypesAcked", func(t *testing.T) {
		tr := newTransport(t)
		b := newBus(t, tr)
		cmds := make(chan Deposit, 1)
		events := make(chan Deposited, 1)
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { cmds <- cmd; return nil }))
		require.NoError(t, bus.HandleEvent(b, "g", func(ctx context.Context, e Deposited) error { events <- e; return nil }))
		run(t, b)

		unknown := message.NewMessage(uuid.NewString(), []byte(`{}`))
		unknown.Metadata.Set(bus.MetadataType, "NoSuchCommand")
		untyped := message.NewMessage(uuid.NewString(), []byte(`{}`))
		require.NoError(t, tr.pub.Publish(tr.prefix+"command-Deposit", unknown, untyped))
		require.NoError(t, b.Send(t.Context(), Deposit{ID: "1", Amount: 1}))
		assert.Equal(t, Deposit{ID: "1", Amount: 1}, recv(t, cmds), "the command after unknown ones arrives")

		relay := bus.NewRelay(b)
		require.NoError(t, relay.Publish(t.Context(), stored("NoSuchEvent", `{}`), stored("MoneyDeposited", `{"amount":3}`)))
		assert.Equal(t, Deposited{Amount: 3}, recv(t, events), "the event after an unknown one arrives")
		assert.Zero(t, b.Dropped(), "unknown types are skipped, not failures")
	})

	t.Run("SharedCommandTopic", func(t *testing.T) {
		tr := newTransport(t)
		b := newBus(t, tr, bus.WithSharedCommandTopic())
		deposits := make(chan Deposit, 1)
		withdrawals := make(chan Withdraw, 1)
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { deposits <- cmd; return nil }))
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Withdraw) error { withdrawals <- cmd; return nil }))
		run(t, b)

		unknown := message.NewMessage(uuid.NewString(), []byte(`{}`))
		unknown.Metadata.Set(bus.MetadataType, "NoSuchCommand")
		require.NoError(t, tr.pub.Publish(tr.prefix+"commands", unknown))
		require.NoError(t, b.Send(t.Context(), Deposit{ID: "1", Amount: 1}))
		require.NoError(t, b.Send(t.Context(), Withdraw{ID: "1", Amount: 2}))
		assert.Equal(t, Deposit{ID: "1", Amount: 1}, recv(t, deposits))
		assert.Equal(t, Withdraw{ID: "1", Amount: 2}, recv(t, withdrawals))
		got, err := bus.Request[struct{}](t.Context(), b, Withdraw{ID: "2"})
		require.NoError(t, err)
		assert.Equal(t, struct{}{}, got)
		assert.Equal(t, Withdraw{ID: "2"}, recv(t, withdrawals))
		assert.Empty(t, deposits, "each handler acknowledged the other's commands")
		assert.Zero(t, b.Dropped())
	})

	t.Run("UndecodableToPoisonQueue", func(t *testing.T) {
		tr := newTransport(t)
		b := newBus(t, tr, bus.WithPoisonQueue(tr.prefix+"poison"))
		cmds := make(chan Deposit, 2)
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { cmds <- cmd; return nil }))
		poisoned := subscribe(t, tr, tr.prefix+"poison")
		run(t, b)

		bad := message.NewMessage(uuid.NewString(), []byte(`"not a Deposit"`))
		bad.Metadata.Set(bus.MetadataType, "Deposit")
		require.NoError(t, tr.pub.Publish(tr.prefix+"command-Deposit", bad))
		require.NoError(t, b.Send(t.Context(), Deposit{ID: "1", Amount: 1}))
		assert.Equal(t, Deposit{ID: "1", Amount: 1}, recv(t, cmds))
		p := recv(t, poisoned)
		assert.Equal(t, bad.UUID, p.UUID)
		assert.Contains(t, p.Metadata.Get(middleware.ReasonForPoisonedKey), "decode")
		assert.Empty(t, cmds, "the handler never saw the bad message")
		assert.Zero(t, b.Dropped())
	})

	t.Run("UndecodableDropped", func(t *testing.T) {
		tr := newTransport(t)
		b := newBus(t, tr)
		cmds := make(chan Deposit, 2)
		events := make(chan Deposited, 2)
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error { cmds <- cmd; return nil }))
		require.NoError(t, bus.HandleEvent(b, "g", func(ctx context.Context, e Deposited) error { events <- e; return nil }))
		run(t, b)

		bad := message.NewMessage(uuid.NewString(), []byte(`"not a Deposit"`))
		bad.Metadata.Set(bus.MetadataType, "Deposit")
		require.NoError(t, tr.pub.Publish(tr.prefix+"command-Deposit", bad))
		require.NoError(t, b.Send(t.Context(), Deposit{ID: "1", Amount: 1}))
		assert.Equal(t, Deposit{ID: "1", Amount: 1}, recv(t, cmds))
		require.NoError(t, bus.NewRelay(b).Publish(t.Context(), stored("MoneyDeposited", `"oops"`), stored("MoneyDeposited", `{"amount":2}`)))
		assert.Equal(t, Deposited{Amount: 2}, recv(t, events))
		require.Eventually(t, func() bool { return b.Dropped() == 2 }, wait, 5*time.Millisecond)
		assert.Empty(t, cmds)
		assert.Empty(t, events)
	})

	t.Run("PanicRecoveredRetriedPoisoned", func(t *testing.T) {
		tr := newTransport(t)
		b := newBus(t, tr, bus.WithPoisonQueue(tr.prefix+"poison"))
		var attempts atomic.Int32
		require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Deposit) error {
			attempts.Add(1)
			panic("boom")
		}))
		poisoned := subscribe(t, tr, tr.prefix+"poison")
		run(t, b)

		require.NoError(t, b.Send(t.Context(), Deposit{ID: "1"}))
		p := recv(t, poisoned)
		assert.Contains(t, p.Metadata.Get(middleware.ReasonForPoisonedKey), "boom")
		assert.Equal(t, int32(3), attempts.Load(), "tried once, retried twice")

		// A request gets the failure at once, not at its timeout.
		start := time.Now()
		_, err := bus.Request[struct{}](t.Context(), b, Deposit{ID: "2"})
		require.ErrorIs(t, err, bus.ErrHandlerFailed)
		assert.Contains(t, err.Error(), "panic: boom")
		assert.Less(t, time.Since(start), 10*time.Second)
		recv(t, poisoned)
	})

	t.Run("PanicDropped", func(t *testing.T) {
		b := newBus(t, newTransport(t))
		var attempts atomic.Int32
		require.NoError(t, bus.HandleEvent(b, "g", func(ctx context.Context, e Deposited) error {
			attempts.Add(1)
			panic("boom")
		}))
		run(t, b)
		require.NoError(t, bus.NewRelay(b).Publish(t.Context(), stored("MoneyDeposited", `{"amount":1}`)))
		require.Eventually(t, func() bool { return b.Dropped() == 1 }, wait, 5*time.Millisecond)
		assert.Equal(t, int32(3), attempts.Load())
	})

	t.Run("MetadataChain", func(t *testing.T) { testMetadataChain(t, newTransport(t)) })

	t.Run("IdempotentAcrossRestart", func(t *testing.T) {
		tr := newTransport(t)
		processed := new(bus.MemoryProcessed)
		calls := make(chan uuid.UUID, 10)
		handler := bus.Idempotent(processed, "audit", func(ctx context.Context, e Deposited) error {
			rec, _ := bus.EventFromContext(ctx)
			calls <- rec.ID
			return nil
		})
		e1, e2 := stored("MoneyDeposited", `{"amount":1}`), stored("MoneyDeposited", `{"amount":2}`)

		b1 := newBus(t, tr)
		require.NoError(t, bus.HandleEvent(b1, "audit", handler))
		stop := run(t, b1)
		require.NoError(t, bus.NewRelay(b1).Publish(t.Context(), e1))
		assert.Equal(t, e1.ID, recv(t, calls))
		stop()

		// A restart: a new bus, the same store of processed events. The
		// relay publishes e1 again (it crashed before its checkpoint).
		b2 := newBus(t, tr)
		require.NoError(t, bus.HandleEvent(b2, "audit", handler))
		run(t, b2)
		require.NoError(t, bus.NewRelay(b2).Publish(t.Context(), e1, e2))
		assert.Equal(t, e2.ID, recv(t, calls))
		assert.Empty(t, calls, "e1 was not handled again")
	})

	t.Run("RelayInOrderWithIDs", func(t *testing.T) {
		b := newBus(t, newTransport(t))
		got := make(chan es.RecordedEvent, 100)
		require.NoError(t, bus.HandleEvent(b, "order", func(ctx context.Context, e Deposited) error {
			rec, ok := bus.EventFromContext(ctx)
			require.True(t, ok)
			got <- rec
			return nil
		}))
		run(t, b)
		events := make([]es.RecordedEvent, 20)
		for i := range events {
			events[i] = stored("MoneyDeposited", `{"amount":`+string(rune('0'+i%10))+`}`)
			events[i].Revision = uint64(i)
			events[i].Position = es.Position{Commit: uint64(i + 1), Prepare: uint64(i + 1)}
		}
		relay := bus.NewRelay(b)
		require.NoError(t, relay.Publish(t.Context(), events[:5]...))
		require.NoError(t, relay.Publish(t.Context(), events[5:]...))
		for _, want := range events {
			rec := recv(t, got)
			assert.Equal(t, want.ID, rec.ID)
			assert.Equal(t, want.Stream, rec.Stream)
			assert.Equal(t, want.Revision, rec.Revision)
			assert.Equal(t, want.Position, rec.Position)
			assert.Equal(t, want.Type, rec.Type)
			assert.Equal(t, want.Data, rec.Data)
			assert.JSONEq(t, string(want.Metadata), string(rec.Metadata))
			assert.True(t, want.Created.Equal(rec.Created))
		}
	})
}

// errorsJoin is the handler's domain error for cmd.
func errorsJoin(cmd Withdraw) error {
	_, err := withdraw(cmd.Amount)(Account{})
	return err
}

// stored returns a stored event of type typ with payload data.
func stored(typ, data string) es.RecordedEvent {
	return es.RecordedEvent{ID: uuid.New(), Stream: "account-1", Type: typ, ContentType: es.ContentTypeJSON,
		Position: es.Position{Commit: 1, Prepare: 1}, Created: time.Now().UTC(), Data: []byte(data),
		Metadata: []byte(`{"$correlationId":"c-1","$causationId":"x-1"}`)}
}

// subscribe subscribes the test to topic on tr, acknowledging what it
// receives.
func subscribe(t *testing.T, tr transport, topic string) <-chan *message.Message {
	t.Helper()
	sub, err := tr.sub("test-" + strings.TrimSuffix(tr.prefix, "-"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(func() {
		cancel()
		_ = sub.Close()
	})
	msgs, err := sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	out := make(chan *message.Message, 10)
	go func() {
		for m := range msgs {
			m.Ack()
			out <- m
		}
	}()
	return out
}

// testMetadataChain follows a chain: a request → its handler appends →
// the relay (a projection) → a process manager sends a command → its
// handler appends. Every event records the chain's correlation ID and the
// ID of the message that caused it.
func testMetadataChain(t *testing.T, tr transport) {
	store := memstore.MustNew()
	repo, err := aggregate.New(store, eventTypes(), accounts)
	require.NoError(t, err)
	b := newBus(t, tr)

	cmdIDs := make(chan string, 3)
	reviewMsg := make(chan *message.Message, 1)
	require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, cmd OpenAccount) (Balance, error) {
		_, err := repo.Create(ctx, cmd.ID, open(cmd))
		return Balance{}, err
	}))
	require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, cmd Deposit) (Balance, error) {
		cmdIDs <- cqrs.OriginalMessageFromCtx(ctx).UUID
		res, err := repo.Update(ctx, cmd.ID, deposit(cmd.Amount))
		return Balance{Balance: res.State.Balance}, err
	}))
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd Review) error {
		reviewMsg <- cqrs.OriginalMessageFromCtx(ctx)
		_, err := repo.Update(ctx, cmd.ID, review)
		return err
	}))
	// A process manager: large deposits are reviewed.
	require.NoError(t, bus.HandleEvent(b, "reviews", func(ctx context.Context, e Deposited) error {
		if e.Amount < 1000 {
			return nil
		}
		rec, _ := bus.EventFromContext(ctx)
		return b.Send(ctx, Review{ID: strings.TrimPrefix(rec.Stream, "account-")})
	}))
	reviewed := make(chan es.RecordedEvent, 1)
	require.NoError(t, bus.HandleEvent(b, "audit", func(ctx context.Context, e Reviewed) error {
		rec, _ := bus.EventFromContext(ctx)
		reviewed <- rec
		return nil
	}))
	run(t, b)
	runRelay(t, store, b)

	ctx := es.WithCorrelationID(t.Context(), "chain-1")
	_, err = bus.Request[Balance](ctx, b, OpenAccount{ID: "7", Owner: "ada"})
	require.NoError(t, err)
	bal, err := bus.Request[Balance](ctx, b, Deposit{ID: "7", Amount: 5000})
	require.NoError(t, err)
	assert.Equal(t, Balance{Balance: 5000}, bal)
	relayed := recv(t, reviewed)

	var events []es.RecordedEvent
	for rec, err := range store.ReadStream(t.Context(), "account-7", es.ReadStreamOptions{}) {
		require.NoError(t, err)
		events = append(events, rec)
	}
	require.Len(t, events, 3)
	md := make([]es.Metadata, len(events))
	for i, e := range events {
		md[i], err = es.ParseMetadata(e.Metadata)
		require.NoError(t, err)
		assert.Equal(t, "chain-1", md[i].CorrelationID, "event %d (%s)", i, e.Type)
	}
	depositID := recv(t, cmdIDs)
	assert.Equal(t, depositID, md[1].CausationID, "MoneyDeposited was caused by the Deposit command")
	rm := recv(t, reviewMsg)
	assert.Equal(t, "chain-1", rm.Metadata.Get(bus.MetadataCorrelationID), "the process manager's command")
	assert.Equal(t, events[1].ID.String(), rm.Metadata.Get(bus.MetadataCausationID), "Review was caused by MoneyDeposited")
	assert.Equal(t, rm.UUID, md[2].CausationID, "DepositReviewed was caused by the Review command")

	assert.Equal(t, events[2].ID, relayed.ID, "the relay publishes the stored event ID")
	assert.Equal(t, events[2].Position, relayed.Position)
	assert.JSONEq(t, string(events[2].Metadata), string(relayed.Metadata))
}

// runRelay runs a relay projection from store to b until the test ends.
func runRelay(t *testing.T, store es.Store, b *bus.Bus) {
	t.Helper()
	relay := bus.NewRelay(b)
	runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), eventTypes(), projection.Projection[projection.NoTx]{
		Name:       "relay",
		Categories: []string{"account"},
		Handle: func(ctx context.Context, _ projection.NoTx, batch projection.Batch) error {
			events := make([]es.RecordedEvent, len(batch.Events))
			for i, e := range batch.Events {
				events[i] = e.RecordedEvent
			}
			return relay.Publish(ctx, events...)
		},
	}, projection.WithBatch(100, 5*time.Millisecond), projection.WithLogger(testLogger()))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(wait):
			t.Error("the relay did not stop")
		}
	})
}
