package bustest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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

// A command reaches its handler with the caller's metadata; the command's
// ID is the causation of what it causes.
func (s *suite) testSendReachesHandler(t *testing.T) {
	b := s.bus(t, s.transport(t))
	type got struct {
		cmd deposit
		md  es.Metadata
		id  string
	}
	ch := make(chan got, 2)
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd deposit) error {
		ch <- got{cmd, es.MetadataFromContext(ctx), cqrs.OriginalMessageFromCtx(ctx).UUID}
		return nil
	}))
	Start(t, b)

	ctx := es.WithMetadataValue(es.WithCorrelationID(t.Context(), "corr-1"), "tenant", "acme")
	require.NoError(t, b.Send(ctx, deposit{ID: "1", Amount: 5}))
	g := recv(t, ch)
	assert.Equal(t, deposit{ID: "1", Amount: 5}, g.cmd)
	assert.Equal(t, "corr-1", g.md.CorrelationID, "the caller's correlation ID")
	assert.Equal(t, map[string]string{"tenant": "acme"}, g.md.Values, "other metadata travels too")
	assert.Equal(t, g.id, g.md.CausationID, "the command's ID is the causation of what it causes")

	require.NoError(t, b.Send(t.Context(), deposit{ID: "1", Amount: 6}))
	g = recv(t, ch)
	assert.Equal(t, g.id, g.md.CorrelationID, "a new chain is correlated by its first command's ID")
}

func (s *suite) testRequestReturnsResult(t *testing.T) {
	b := s.bus(t, s.transport(t))
	require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, cmd deposit) (balance, error) {
		return balance{Balance: cmd.Amount * 2}, nil
	}))
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd withdraw) error { return nil }))
	Start(t, b)

	got, err := bus.Request[balance](t.Context(), b, deposit{ID: "1", Amount: 21})
	require.NoError(t, err)
	assert.Equal(t, balance{Balance: 42}, got)
	_, err = bus.Request[struct{}](t.Context(), b, withdraw{ID: "1"})
	require.NoError(t, err, "a command handler answers requests with no result")
}

// Requests from two buses at once: each reply reaches its request.
func (s *suite) testConcurrentRequests(t *testing.T) {
	tr := s.transport(t)
	handler := s.bus(t, tr)
	require.NoError(t, bus.HandleRequest(handler, func(ctx context.Context, cmd deposit) (balance, error) {
		return balance{Balance: cmd.Amount}, nil
	}))
	Start(t, handler)
	caller := s.bus(t, tr, bus.WithRemoteCommands("Deposit"))
	Start(t, caller)

	const n = 20
	errs := make(chan error, n)
	for i := range n {
		b := handler
		if i%2 == 1 {
			b = caller
		}
		go func() {
			got, err := bus.Request[balance](t.Context(), b, deposit{ID: "1", Amount: i})
			if err == nil && got.Balance != i {
				err = errors.New("a reply went to the wrong request")
			}
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, recv(t, errs))
	}
}

// With bus.WithCommandConcurrency(3), three commands of one type are
// handled at once (when the transport handles topics concurrently), and
// another bus with the same concurrency reaches every topic.
func (s *suite) testCommandConcurrency(t *testing.T) {
	tr := s.transport(t)
	handler := s.bus(t, tr, bus.WithCommandConcurrency(3))
	k := 3
	if !s.features.ConcurrentHandling {
		t.Log("Features.ConcurrentHandling is not set: checking only that the commands of every topic are handled")
		k = 1
	}
	require.NoError(t, bus.HandleCommand(handler, together(k)))
	Start(t, handler)
	for _, err := range depositsAtOnce(t, handler, 3) {
		require.NoError(t, err, "three commands of one type handled at once")
	}
	caller := s.bus(t, tr, bus.WithRemoteCommands("Deposit"), bus.WithCommandConcurrency(3))
	Start(t, caller)
	for _, err := range depositsAtOnce(t, caller, 3) {
		require.NoError(t, err, "another bus with the same concurrency reaches every topic")
	}
}

// together returns a command handler that returns once k commands are
// inside it at once, or fails after Wait.
func together(k int) func(ctx context.Context, cmd deposit) error {
	var mu sync.Mutex
	inside := 0
	all := make(chan struct{})
	return func(ctx context.Context, cmd deposit) error {
		mu.Lock()
		if inside++; inside == k {
			close(all)
		}
		n := inside
		mu.Unlock()
		timer := time.NewTimer(Wait)
		defer timer.Stop()
		select {
		case <-all:
			return nil
		case <-timer.C:
			return fmt.Errorf("%d of %d commands inside the handler at once", n, k)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d commands inside the handler at once: %w", n, k, ctx.Err())
		}
	}
}

// depositsAtOnce requests k deposits at once and returns their errors.
func depositsAtOnce(t *testing.T, b *bus.Bus, k int) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Wait)
	defer cancel()
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() { _, errs[i] = bus.Request[struct{}](ctx, b, deposit{ID: fmt.Sprint(i), Amount: 1}) })
	}
	wg.Wait()
	return errs
}

// A domain error reaches the caller as is on the same bus, and with its
// message and identity from another bus.
func (s *suite) testDomainErrorIdentity(t *testing.T) {
	tr := s.transport(t)
	handler := s.bus(t, tr)
	var herr error
	require.NoError(t, bus.HandleCommand(handler, func(ctx context.Context, cmd withdraw) error {
		herr = insufficientFunds(cmd.Amount)
		return herr
	}))
	Start(t, handler)

	_, err := bus.Request[struct{}](t.Context(), handler, withdraw{ID: "1", Amount: 5})
	require.Error(t, err)
	assert.True(t, err == herr, "same error value: %v", err)

	caller := s.bus(t, tr, bus.WithRemoteCommands("Withdraw"))
	Start(t, caller)
	_, err = bus.Request[struct{}](t.Context(), caller, withdraw{ID: "1", Amount: 7})
	require.ErrorIs(t, err, errInsufficientFunds)
	assert.Equal(t, "bustest: insufficient funds: balance 0, withdrawing 7", err.Error())
	var he *bus.HandlerError
	assert.ErrorAs(t, err, &he)
	assert.NotErrorIs(t, err, es.ErrWrongExpectedVersion)
}

// A request without a reply in time fails with the deadline; its handler
// gets the caller's deadline.
func (s *suite) testRequestTimeout(t *testing.T) {
	b := s.bus(t, s.transport(t), bus.WithRequestTimeout(300*time.Millisecond))
	deadlines := make(chan bool, 1)
	returned := make(chan struct{})
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd deposit) error {
		if cmd.ID != "1" {
			return nil
		}
		defer close(returned)
		_, ok := ctx.Deadline()
		deadlines <- ok
		<-ctx.Done() // a slow handler that respects its context
		return ctx.Err()
	}))
	Start(t, b)

	start := time.Now()
	_, err := bus.Request[struct{}](t.Context(), b, deposit{ID: "1"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.True(t, recv(t, deadlines), "the handler gets the caller's deadline")
	// The late reply of the first request is on its way once its handler
	// returned; a second request's reply comes after it, so that the bus
	// stops with no message in flight (watermill-nats 2.1.3 can race a
	// message that arrives while it closes a subscription against that
	// close).
	recv(t, returned)
	_, err = bus.Request[struct{}](t.Context(), b, deposit{ID: "2"})
	require.NoError(t, err, "the bus still answers")
}

func (s *suite) testNoHandler(t *testing.T) {
	b := s.bus(t, s.transport(t))
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd deposit) error { return nil }))
	// Not running: the error comes at once, before waiting for the bus.
	require.ErrorIs(t, b.Send(t.Context(), unhandled{}), bus.ErrNoHandler)
	_, err := bus.Request[struct{}](t.Context(), b, unhandled{})
	require.ErrorIs(t, err, bus.ErrNoHandler)
	assert.EqualError(t, err, `bus: no handler for command "Unhandled"`)
	require.ErrorIs(t, b.Send(t.Context(), struct{ X int }{}), bus.ErrNoHandler)
	require.ErrorIs(t, b.Send(t.Context(), &unhandled{}), bus.ErrNoHandler)
}

func (s *suite) testDuplicateHandlers(t *testing.T) {
	b := s.bus(t, s.transport(t))
	nop := func(ctx context.Context, e deposited) error { return nil }
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd deposit) error { return nil }))
	require.ErrorIs(t, bus.HandleCommand(b, func(ctx context.Context, cmd deposit) error { return nil }), bus.ErrDuplicateHandler)
	require.ErrorIs(t, bus.HandleRequest(b, func(ctx context.Context, cmd deposit) (balance, error) { return balance{}, nil }), bus.ErrDuplicateHandler)
	require.NoError(t, bus.HandleEvent(b, "g1", nop))
	require.ErrorIs(t, bus.HandleEvent(b, "g1", nop), bus.ErrDuplicateHandler)
	require.NoError(t, bus.HandleEvent(b, "g2", nop))
	require.ErrorIs(t, bus.HandleEvent(b, "g.1", nop), bus.ErrInvalidOption)
	require.ErrorIs(t, bus.HandleEvent(b, "g3", nop, bus.WithIdempotency(nil)), bus.ErrInvalidOption)
	require.ErrorIs(t, bus.HandleEvent(b, "g3", nop, nil), bus.ErrInvalidOption)
	require.ErrorIs(t, bus.HandleCommand(b, func(ctx context.Context, cmd struct{}) error { return nil }), bus.ErrInvalidOption)
	Start(t, b)
	require.ErrorIs(t, bus.HandleCommand(b, func(ctx context.Context, cmd withdraw) error { return nil }), bus.ErrRunning)
}

// recording runs a bus on tr whose handlers of Deposit and of
// MoneyDeposited (in group "g") send what they get to cmds and events.
func (s *suite) recording(t *testing.T, tr Transport) (b *bus.Bus, cmds <-chan deposit, events <-chan deposited) {
	t.Helper()
	b = s.bus(t, tr)
	c, e := make(chan deposit, 2), make(chan deposited, 2)
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd deposit) error { c <- cmd; return nil }))
	require.NoError(t, bus.HandleEvent(b, "g", func(ctx context.Context, ev deposited) error { e <- ev; return nil }))
	Start(t, b)
	return b, c, e
}

// Messages of unknown types, or of none, are acknowledged and skipped.
func (s *suite) testUnknownTypesAcked(t *testing.T) {
	tr := s.transport(t)
	b, cmds, events := s.recording(t, tr)

	unknown := message.NewMessage(uuid.NewString(), []byte(`{}`))
	unknown.Metadata.Set(bus.MetadataType, "NoSuchCommand")
	untyped := message.NewMessage(uuid.NewString(), []byte(`{}`))
	require.NoError(t, tr.Publisher.Publish(tr.TopicPrefix+"command-Deposit", unknown, untyped))
	require.NoError(t, b.Send(t.Context(), deposit{ID: "1", Amount: 1}))
	assert.Equal(t, deposit{ID: "1", Amount: 1}, recv(t, cmds), "the command after unknown ones arrives")

	require.NoError(t, b.Publish(t.Context(), stored("NoSuchEvent", `{}`), stored("MoneyDeposited", `{"amount":3}`)))
	assert.Equal(t, deposited{Amount: 3}, recv(t, events), "the event after an unknown one arrives")
	assert.Zero(t, b.Dropped(), "unknown types are skipped, not failures")
}

func (s *suite) testSharedCommandTopic(t *testing.T) {
	tr := s.transport(t)
	b := s.bus(t, tr, bus.WithSharedCommandTopic())
	deposits := make(chan deposit, 1)
	withdrawals := make(chan withdraw, 1)
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd deposit) error { deposits <- cmd; return nil }))
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd withdraw) error { withdrawals <- cmd; return nil }))
	Start(t, b)

	unknown := message.NewMessage(uuid.NewString(), []byte(`{}`))
	unknown.Metadata.Set(bus.MetadataType, "NoSuchCommand")
	require.NoError(t, tr.Publisher.Publish(tr.TopicPrefix+"commands", unknown))
	require.NoError(t, b.Send(t.Context(), deposit{ID: "1", Amount: 1}))
	require.NoError(t, b.Send(t.Context(), withdraw{ID: "1", Amount: 2}))
	assert.Equal(t, deposit{ID: "1", Amount: 1}, recv(t, deposits))
	assert.Equal(t, withdraw{ID: "1", Amount: 2}, recv(t, withdrawals))
	got, err := bus.Request[struct{}](t.Context(), b, withdraw{ID: "2"})
	require.NoError(t, err)
	assert.Equal(t, struct{}{}, got)
	assert.Equal(t, withdraw{ID: "2"}, recv(t, withdrawals))
	assert.Empty(t, deposits, "each handler acknowledged the other's commands")
	assert.Zero(t, b.Dropped())
}

// undecodable returns a Deposit command that does not decode.
func undecodable() *message.Message {
	bad := message.NewMessage(uuid.NewString(), []byte(`"not a Deposit"`))
	bad.Metadata.Set(bus.MetadataType, "Deposit")
	return bad
}

func (s *suite) testUndecodableToPoisonQueue(t *testing.T) {
	tr := s.transport(t)
	b := s.bus(t, tr, bus.WithPoisonQueue(tr.TopicPrefix+"poison"))
	cmds := make(chan deposit, 2)
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd deposit) error { cmds <- cmd; return nil }))
	poisoned := subscribe(t, tr, tr.TopicPrefix+"poison")
	Start(t, b)

	bad := undecodable()
	require.NoError(t, tr.Publisher.Publish(tr.TopicPrefix+"command-Deposit", bad))
	require.NoError(t, b.Send(t.Context(), deposit{ID: "1", Amount: 1}))
	assert.Equal(t, deposit{ID: "1", Amount: 1}, recv(t, cmds))
	p := recv(t, poisoned)
	assert.Equal(t, bad.UUID, p.UUID)
	assert.Contains(t, p.Metadata.Get(middleware.ReasonForPoisonedKey), "decode")
	assert.Empty(t, cmds, "the handler never saw the bad message")
	assert.Zero(t, b.Dropped())
}

func (s *suite) testUndecodableDropped(t *testing.T) {
	tr := s.transport(t)
	b, cmds, events := s.recording(t, tr)

	require.NoError(t, tr.Publisher.Publish(tr.TopicPrefix+"command-Deposit", undecodable()))
	require.NoError(t, b.Send(t.Context(), deposit{ID: "1", Amount: 1}))
	assert.Equal(t, deposit{ID: "1", Amount: 1}, recv(t, cmds))
	require.NoError(t, b.Publish(t.Context(), stored("MoneyDeposited", `"oops"`), stored("MoneyDeposited", `{"amount":2}`)))
	assert.Equal(t, deposited{Amount: 2}, recv(t, events))
	require.Eventually(t, func() bool { return b.Dropped() == 2 }, Wait, 5*time.Millisecond)
	assert.Empty(t, cmds)
	assert.Empty(t, events)
}

func (s *suite) testPanicRecoveredRetriedPoisoned(t *testing.T) {
	tr := s.transport(t)
	b := s.bus(t, tr, bus.WithPoisonQueue(tr.TopicPrefix+"poison"))
	var attempts atomic.Int32
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd deposit) error {
		attempts.Add(1)
		panic("boom")
	}))
	poisoned := subscribe(t, tr, tr.TopicPrefix+"poison")
	Start(t, b)

	require.NoError(t, b.Send(t.Context(), deposit{ID: "1"}))
	p := recv(t, poisoned)
	assert.Contains(t, p.Metadata.Get(middleware.ReasonForPoisonedKey), "boom")
	assert.Equal(t, int32(3), attempts.Load(), "tried once, retried twice")

	// A request gets the failure at once, not at its timeout.
	start := time.Now()
	_, err := bus.Request[struct{}](t.Context(), b, deposit{ID: "2"})
	require.ErrorIs(t, err, bus.ErrHandlerFailed)
	assert.Contains(t, err.Error(), "panic: boom")
	assert.Less(t, time.Since(start), 10*time.Second)
	recv(t, poisoned)
}

func (s *suite) testPanicDropped(t *testing.T) {
	b := s.bus(t, s.transport(t))
	var attempts atomic.Int32
	require.NoError(t, bus.HandleEvent(b, "g", func(ctx context.Context, e deposited) error {
		attempts.Add(1)
		panic("boom")
	}))
	Start(t, b)
	require.NoError(t, b.Publish(t.Context(), stored("MoneyDeposited", `{"amount":1}`)))
	require.Eventually(t, func() bool { return b.Dropped() == 1 }, Wait, 5*time.Millisecond)
	assert.Equal(t, int32(3), attempts.Load())
}

// An idempotent event handler group skips, after a restart, the events it
// handled before.
func (s *suite) testIdempotentAcrossRestart(t *testing.T) {
	tr := s.transport(t)
	processed := new(bus.MemoryProcessed)
	calls := make(chan uuid.UUID, 10)
	handler := func(ctx context.Context, e deposited) error {
		rec, _ := bus.EventFromContext(ctx)
		calls <- rec.ID
		return nil
	}
	e1, e2 := stored("MoneyDeposited", `{"amount":1}`), stored("MoneyDeposited", `{"amount":2}`)

	b1 := s.bus(t, tr)
	require.NoError(t, bus.HandleEvent(b1, "audit", handler, bus.WithIdempotency(processed)))
	stop := Start(t, b1)
	require.NoError(t, b1.Publish(t.Context(), e1))
	assert.Equal(t, e1.ID, recv(t, calls))
	stop()
	done, err := processed.Processed(t.Context(), "audit", e1.ID)
	require.NoError(t, err)
	assert.True(t, done, "marked under the group's name")

	// A restart: a new bus, the same store of processed events. The
	// relay publishes e1 again (it crashed before its checkpoint).
	b2 := s.bus(t, tr)
	require.NoError(t, bus.HandleEvent(b2, "audit", handler, bus.WithIdempotency(processed)))
	Start(t, b2)
	require.NoError(t, b2.Publish(t.Context(), e1, e2))
	assert.Equal(t, e2.ID, recv(t, calls))
	assert.Empty(t, calls, "e1 was not handled again")
}

// The relay's events reach an event handler group with their stored
// fields, in order on a transport that keeps it.
func (s *suite) testRelayWithIDs(t *testing.T) {
	b := s.bus(t, s.transport(t))
	got := make(chan es.RecordedEvent, 100)
	require.NoError(t, bus.HandleEvent(b, "order", func(ctx context.Context, e deposited) error {
		rec, ok := bus.EventFromContext(ctx)
		if !ok {
			return errors.New("no event in the handler's context")
		}
		if g, _ := bus.GroupFromContext(ctx); g != "order" {
			return fmt.Errorf("group %q in the handler's context", g)
		}
		got <- rec
		return nil
	}))
	Start(t, b)
	events := make([]es.RecordedEvent, 20)
	for i := range events {
		events[i] = stored("MoneyDeposited", fmt.Sprintf(`{"amount":%d}`, i))
		events[i].Revision = uint64(i)
		events[i].Position = es.Position{Commit: uint64(i + 1), Prepare: uint64(i + 1)}
	}
	require.NoError(t, b.Publish(t.Context(), events[:5]...))
	require.NoError(t, b.Publish(t.Context(), events[5:]...))
	byID := make(map[uuid.UUID]es.RecordedEvent, len(events))
	for i := range events {
		rec := recv(t, got)
		if s.features.GuaranteedOrder {
			assert.Equal(t, events[i].ID, rec.ID, "event %d in order", i)
		}
		byID[rec.ID] = rec
	}
	for _, want := range events {
		rec, ok := byID[want.ID]
		require.True(t, ok, "event %v arrived", want.ID)
		assert.Equal(t, want.Stream, rec.Stream)
		assert.Equal(t, want.Revision, rec.Revision)
		assert.Equal(t, want.Position, rec.Position)
		assert.Equal(t, want.Type, rec.Type)
		assert.Equal(t, want.Data, rec.Data)
		assert.JSONEq(t, string(want.Metadata), string(rec.Metadata))
		assert.True(t, want.Created.Equal(rec.Created))
	}
}

// stored returns a stored event of type typ with payload data.
func stored(typ, data string) es.RecordedEvent {
	return es.RecordedEvent{ID: uuid.New(), Stream: "account-1", Type: typ, ContentType: es.ContentTypeJSON,
		Position: es.Position{Commit: 1, Prepare: 1}, Created: time.Now().UTC(), Data: []byte(data),
		Metadata: []byte(`{"$correlationId":"c-1","$causationId":"x-1"}`)}
}

// testMetadataChain follows a chain: a request → its handler appends →
// the relay (a projection) → a process manager sends a command → its
// handler appends. Every event records the chain's correlation ID and the
// ID of the message that caused it.
func (s *suite) testMetadataChain(t *testing.T) {
	store := memstore.MustNew()
	repo, err := aggregate.New(store, eventTypes(), accounts)
	require.NoError(t, err)
	b := s.bus(t, s.transport(t))

	cmdIDs := make(chan string, 3)
	reviewMsg := make(chan *message.Message, 1)
	require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, cmd openAccount) (balance, error) {
		_, err := repo.Create(ctx, cmd.ID, func(account) ([]event, error) { return []event{opened{Owner: cmd.Owner}}, nil })
		return balance{}, err
	}))
	require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, cmd deposit) (balance, error) {
		cmdIDs <- cqrs.OriginalMessageFromCtx(ctx).UUID
		res, err := repo.Update(ctx, cmd.ID, func(account) ([]event, error) { return []event{deposited{Amount: cmd.Amount}}, nil })
		return balance{Balance: res.State.balance}, err
	}))
	require.NoError(t, bus.HandleCommand(b, func(ctx context.Context, cmd review) error {
		reviewMsg <- cqrs.OriginalMessageFromCtx(ctx)
		_, err := repo.Update(ctx, cmd.ID, func(account) ([]event, error) { return []event{reviewed{}}, nil })
		return err
	}))
	// A process manager: large deposits are reviewed.
	require.NoError(t, bus.HandleEvent(b, "reviews", func(ctx context.Context, e deposited) error {
		if e.Amount < 1000 {
			return nil
		}
		rec, _ := bus.EventFromContext(ctx)
		return b.Send(ctx, review{ID: strings.TrimPrefix(rec.Stream, "account-")})
	}))
	relayed := make(chan es.RecordedEvent, 1)
	require.NoError(t, bus.HandleEvent(b, "audit", func(ctx context.Context, e reviewed) error {
		rec, _ := bus.EventFromContext(ctx)
		relayed <- rec
		return nil
	}))
	Start(t, b)
	runRelay(t, store, b)

	ctx := es.WithCorrelationID(t.Context(), "chain-1")
	_, err = bus.Request[balance](ctx, b, openAccount{ID: "7", Owner: "ada"})
	require.NoError(t, err)
	bal, err := bus.Request[balance](ctx, b, deposit{ID: "7", Amount: 5000})
	require.NoError(t, err)
	assert.Equal(t, balance{Balance: 5000}, bal)
	last := recv(t, relayed)

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
	assert.Equal(t, recv(t, cmdIDs), md[1].CausationID, "MoneyDeposited was caused by the Deposit command")
	rm := recv(t, reviewMsg)
	assert.Equal(t, "chain-1", rm.Metadata.Get(bus.MetadataCorrelationID), "the process manager's command")
	assert.Equal(t, events[1].ID.String(), rm.Metadata.Get(bus.MetadataCausationID), "Review was caused by MoneyDeposited")
	assert.Equal(t, rm.UUID, md[2].CausationID, "DepositReviewed was caused by the Review command")

	assert.Equal(t, events[2].ID, last.ID, "the relay publishes the stored event ID")
	assert.Equal(t, events[2].Position, last.Position)
	assert.JSONEq(t, string(events[2].Metadata), string(last.Metadata))
}

// runRelay runs b's relay over store until the test ends.
func runRelay(t *testing.T, store es.Store, b *bus.Bus) {
	t.Helper()
	runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Relay(b.Publish, accounts.Category),
		projection.WithBatch(100, 5*time.Millisecond), projection.WithLogger(logger()))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(Wait):
			t.Error("the relay did not stop")
		}
	})
}
