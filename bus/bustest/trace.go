package bustest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventfold/eventfold/aggregate"
	"github.com/eventfold/eventfold/bus"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esotel"
	"github.com/eventfold/eventfold/es/memstore"
	"github.com/eventfold/eventfold/projection"
)

// The trace of a command follows its effects across the transport, in the
// W3C trace context of the messages' metadata: the command's handler, the
// aggregate and the store, the relay's batch (linked), the process manager
// that reacts to the event, the command it sends and that command's
// handler are all in the trace the caller started.
func (s *suite) testTraceChain(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	store, err := esotel.New(memstore.MustNew(), esotel.WithTracerProvider(tp))
	require.NoError(t, err)
	repo, err := aggregate.New(store, eventTypes(), accounts, aggregate.WithTracerProvider(tp))
	require.NoError(t, err)
	b := s.bus(t, s.transport(t), bus.WithTracerProvider(tp))

	require.NoError(t, bus.HandleRequest(b, func(ctx context.Context, cmd deposit) (balance, error) {
		res, err := repo.Update(ctx, cmd.ID, func(account) ([]event, error) { return []event{deposited{Amount: cmd.Amount}}, nil })
		return balance{Balance: res.State.balance}, err
	}))
	reviewed := make(chan struct{}, 1)
	require.NoError(t, bus.HandleCommand(b, func(context.Context, review) error {
		reviewed <- struct{}{}
		return nil
	}))
	require.NoError(t, bus.HandleEvent(b, "reviews", func(ctx context.Context, e deposited) error {
		rec, _ := bus.EventFromContext(ctx)
		return b.Send(ctx, review{ID: strings.TrimPrefix(rec.Stream, "account-")})
	}))
	Start(t, b)
	runner, err := projection.NewRunner(store, new(projection.MemoryCheckpoints), nil, projection.Relay(b.Publish, accounts.Category),
		projection.WithBatch(100, 5*time.Millisecond), projection.WithLogger(logger()), projection.WithTracerProvider(tp))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	_, err = store.Append(t.Context(), "account-9", es.NoStream, es.EventData{Type: "AccountOpened", Data: []byte(`{"owner":"ada"}`)})
	require.NoError(t, err)
	rctx, root := tp.Tracer("caller").Start(t.Context(), "POST /deposits")
	_, err = bus.Request[balance](rctx, b, deposit{ID: "9", Amount: 5000})
	require.NoError(t, err)
	root.End()
	recv(t, reviewed)

	trace := root.SpanContext().TraceID()
	want := []string{"send Deposit", "process Deposit", "update account", "append account",
		"process MoneyDeposited reviews", "send Review", "process Review"}
	inTrace := map[string]bool{}
	var links int
	complete := func() bool {
		for _, name := range want {
			if !inTrace[name] {
				return false
			}
		}
		return links > 0
	}
	// Spans end when their work returns, which on some transports is
	// after the last handler signalled: poll until they all ended.
	deadline := time.Now().Add(Wait)
	for {
		inTrace, links = map[string]bool{}, 0
		for _, sp := range spans.Ended() {
			if sp.SpanContext().TraceID() == trace {
				inTrace[sp.Name()] = true
			}
			if sp.Name() == "process relay" {
				for _, l := range sp.Links() {
					if l.SpanContext.TraceID() == trace {
						links++
					}
				}
			}
		}
		if complete() || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, name := range want {
		assert.True(t, inTrace[name], "span %q in the caller's trace (have %v)", name, inTrace)
	}
	assert.NotZero(t, links, "the relay's batch links the caller's trace")
}
