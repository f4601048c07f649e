package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/components/requestreply"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/internal/otelx"
)

// HandleCommand registers fn as the handler of the commands of type C, a
// type of the bus's command registry. A command type has one handler: a
// second registration, by any function, fails with [ErrDuplicateHandler].
//
// fn's context carries the command's metadata ([es.MetadataFromContext]):
// the chain's correlation ID and, as causation ID, the command's ID, so
// that the events an aggregate appends in fn record both. A request's
// caller gets fn's error; see [Request].
func HandleCommand[C any](b *Bus, fn func(ctx context.Context, cmd C) error) error {
	if fn == nil {
		return fmt.Errorf("%w: nil handler", ErrInvalidOption)
	}
	return HandleRequest(b, func(ctx context.Context, cmd C) (struct{}, error) { return struct{}{}, fn(ctx, cmd) })
}

// HandleRequest registers fn as the handler of the commands of type C,
// answering [Request] with a result of type R (encoded as JSON on the
// wire). Otherwise it is [HandleCommand].
func HandleRequest[C, R any](b *Bus, fn func(ctx context.Context, cmd C) (R, error)) error {
	if fn == nil {
		return fmt.Errorf("%w: nil handler", ErrInvalidOption)
	}
	name, err := typeName[C](b.commands, "command")
	if err != nil {
		return err
	}
	replies, err := backend[R](b)
	if err != nil {
		return err
	}
	topic := b.commandTopic(name)
	h := cqrs.NewCommandHandler("eventfold-command-"+name, func(ctx context.Context, cmd *C) error {
		msg := cqrs.OriginalMessageFromCtx(ctx)
		hctx, cancel := commandContext(ctx, msg, topic)
		defer cancel()
		hctx, h := b.tel.startHandle(hctx, "command", name, "", msg)
		res, herr := fn(hctx, *cmd)
		h.end(hctx, herr)
		if msg.Metadata.Get(requestreply.OperationIDMetadataKey) == "" {
			return herr // sent: retried, then poisoned or dropped
		}
		// A request: the caller gets the error, and the command is acked.
		return replies.OnCommandProcessed(ctx, requestreply.BackendOnCommandProcessedParams[R]{
			Command: cmd, CommandMessage: msg, HandlerResult: res, HandleErr: herr})
	})
	return b.register(func() error {
		if b.local[name] {
			return fmt.Errorf("%w: command %q already has a handler", ErrDuplicateHandler, name)
		}
		c := consumerName("command-", name)
		if other, ok := b.consumer[c]; ok {
			return fmt.Errorf("%w: commands %q and %q would share the consumer name %q", ErrInvalidOption, other, name, c)
		}
		for _, p := range b.partitions(h, topic, c) {
			if _, err := b.cmdProc.AddHandler(p); err != nil {
				return fmt.Errorf("bus: command %q: %w", name, err)
			}
		}
		b.local[name] = true
		b.consumer[c] = name
		return nil
	})
}

// inCommandKey marks the context of a command handler with its topic.
type inCommandKey struct{}

// commandContext returns the context of the handler of command msg: its
// metadata, with the command's ID as causation, and its caller's deadline.
func commandContext(ctx context.Context, msg *message.Message, topic string) (context.Context, context.CancelFunc) {
	var m es.Metadata
	if raw := msg.Metadata.Get(MetadataEvent); raw != "" {
		m, _ = es.ParseMetadata([]byte(raw))
	}
	m.CorrelationID = msg.Metadata.Get(MetadataCorrelationID)
	if m.CorrelationID == "" {
		m.CorrelationID = msg.UUID
	}
	m.CausationID = msg.UUID
	ctx = context.WithValue(es.ContextWithMetadata(ctx, m), inCommandKey{}, topic)
	if d, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetadataDeadline)); err == nil {
		return context.WithDeadline(ctx, d)
	}
	return ctx, func() {}
}

// Send sends a command to its handler and returns once the transport has
// it (on the default in-process transport: once it is handled). The
// handler's error does not come back: a failing command is retried, then
// goes to the poison queue or is dropped. Use [Request] to learn the
// outcome.
//
// The command's correlation ID is the one ctx carries
// ([es.WithCorrelationID], or [es.CausedBy] in an event handler), or else
// its own ID; its causation ID is the one ctx carries. A command type
// without a handler is [ErrNoHandler], at once. Send waits until the bus
// runs.
func (b *Bus) Send(ctx context.Context, cmd any) error {
	o, err := b.encode(ctx, cmd, nil)
	if err != nil {
		return err
	}
	if err := b.waitRunning(ctx); err != nil {
		return err
	}
	ctx, span := b.tel.startSend(ctx, o.name, b.commandTopic(o.name), o.msg)
	if err := b.cmdBus.Send(ctx, o); err != nil {
		err = fmt.Errorf("bus: send %q: %w", o.name, err)
		otelx.End(span, err)
		return err
	}
	otelx.End(span, nil)
	return nil
}

// Request sends a command to its handler and waits for the handler's
// result or error, until ctx is done or, when ctx has no deadline, for the
// bus's request timeout ([WithRequestTimeout]). The handler's context gets
// the same deadline. A reply that does not come in time is an error that
// matches ctx's error ([context.DeadlineExceeded]).
//
// The handler's error reaches the caller unchanged when the handler runs on
// the same Bus. From another process it arrives as a [*HandlerError] with
// the same message that matches, with [errors.Is], the errors registered
// with [WithErrors]. A request is handled once, not retried: whatever
// error its handler returns goes to the caller, who decides whether to try
// again. A handler that panics is retried, then answers with an error that
// matches [ErrHandlerFailed]. Metadata and [ErrNoHandler] are as for
// [Bus.Send].
func Request[R any](ctx context.Context, b *Bus, cmd any) (_ R, err error) {
	var zero R
	c := &call{}
	o, err := b.encode(ctx, cmd, c)
	if err != nil {
		return zero, err
	}
	ctx, span := b.tel.startSend(ctx, o.name, b.commandTopic(o.name), o.msg)
	defer func() { otelx.End(span, err) }()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.requestTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	o.msg.Metadata.Set(MetadataDeadline, deadline.UTC().Format(time.RFC3339Nano))
	o.msg.Metadata.Set(MetadataReplyTo, b.replyTopic())
	if err := b.waitRunning(ctx); err != nil {
		return zero, err
	}
	replies, err := backend[R](b)
	if err != nil {
		return zero, err
	}
	reply, err := sendWithReply(ctx, b.cmdBus, replies, o)
	if err == nil {
		err = reply.Error
	}
	switch {
	case err == nil:
		return reply.HandlerResult, nil
	case ctx.Err() != nil && !errors.As(err, new(*HandlerError)):
		b.tel.timeout(context.WithoutCancel(ctx))
		return zero, fmt.Errorf("bus: request %q: no reply: %w", o.name, ctx.Err())
	}
	if local, ok := b.inbox.local(c); ok {
		return zero, local
	}
	var he *HandlerError
	if !errors.As(err, &he) {
		err = fmt.Errorf("bus: request %q: %w", o.name, err)
	}
	return zero, err
}

// encode turns cmd into the message Send or Request publishes.
func (b *Bus) encode(ctx context.Context, cmd any, c *call) (*outgoing, error) {
	name, err := b.commands.Name(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v is not a registered command type", ErrNoHandler, reflect.TypeOf(cmd))
	}
	b.mu.Lock()
	handled := b.local[name] || b.remote[name]
	b.mu.Unlock()
	if !handled {
		return nil, fmt.Errorf("%w for command %q", ErrNoHandler, name)
	}
	if in := ctx.Value(inCommandKey{}); in != nil && b.ownedClose != nil && in == b.commandTopic(name) {
		return nil, fmt.Errorf("%w (command %q)", ErrNestedSend, name)
	}
	ed, err := b.commands.Encode(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("bus: encode %q: %w", name, err)
	}
	msg := message.NewMessage(ed.ID.String(), ed.Data)
	m := es.MetadataFromContext(ctx)
	if m.CorrelationID == "" {
		m.CorrelationID = msg.UUID
	}
	md := msg.Metadata
	md.Set(MetadataType, name)
	md.Set(MetadataContentType, ed.ContentType)
	if len(m.Values) > 0 {
		raw, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("bus: encode metadata of %q: %w", name, err)
		}
		md.Set(MetadataEvent, string(raw))
	}
	md.Set(MetadataCorrelationID, m.CorrelationID)
	if m.CausationID != "" {
		md.Set(MetadataCausationID, m.CausationID)
	}
	return &outgoing{name: name, msg: msg, call: c}, nil
}

// sendWithReply is requestreply.SendWithReply, except that it reads the
// replies channel until Watermill's listener closes it. SendWithReply
// returns on ctx's end without reading the channel: when a reply was
// buffered at that moment, the listener then blocks for ever on sending its
// timeout (Watermill 1.5.1), a goroutine leaked at every such shutdown.
func sendWithReply[R any](ctx context.Context, c requestreply.CommandBus, backend requestreply.Backend[R], cmd any) (requestreply.Reply[R], error) {
	replies, cancel, err := requestreply.SendWithReplies[R](ctx, c, backend, cmd)
	if err != nil {
		return requestreply.Reply[R]{}, fmt.Errorf("SendWithReplies failed: %w", err)
	}
	defer func() {
		cancel()
		for range replies { // until the listener closed it
		}
	}()
	select {
	case <-ctx.Done():
		return requestreply.Reply[R]{}, fmt.Errorf("context closed: %w", ctx.Err())
	case reply := <-replies:
		return reply, nil
	}
}
