package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/requestreply"
	"github.com/ThreeDotsLabs/watermill/message"
)

// HandlerError is the error of a command handler as a [Request] receives
// it from another process (or another Bus): the handler's message, matching
// with [errors.Is] each error registered with [WithErrors] that the
// handler's error matched. Within one Bus, the caller gets the handler's
// error value itself instead.
type HandlerError struct {
	// Message is the handler's error message.
	Message string
	errs    []error
}

// Error returns the handler's error message.
func (e *HandlerError) Error() string { return e.Message }

// Unwrap returns the registered errors that the handler's error matched.
func (e *HandlerError) Unwrap() []error { return e.errs }

// errorCodesKey is the metadata key of a reply that lists the registered
// errors the handler's error matched, as a JSON array of their messages.
const errorCodesKey = "error_codes"

// call is one request waiting for its reply.
type call struct {
	ch  chan *message.Message
	err error // the handler's error, when handled by this bus
}

// inbox receives the replies to this bus's requests, on one subscription,
// and hands each to the request waiting for it.
type inbox struct {
	mu      sync.Mutex
	pending map[string]*call // by operation ID
}

// deliver hands a reply to the request waiting for it. Replies nobody
// waits for any more (the caller timed out) are dropped.
func (in *inbox) deliver(msg *message.Message) {
	op := msg.Metadata.Get(requestreply.OperationIDMetadataKey)
	in.mu.Lock()
	defer in.mu.Unlock()
	if c := in.pending[op]; c != nil {
		select {
		case c.ch <- msg.Copy():
		default: // a second reply (after a retry): the first one counts
		}
	}
}

// setLocal hands the handler's error value to a request of this bus.
func (in *inbox) setLocal(op string, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if c := in.pending[op]; c != nil {
		c.err = err
	}
}

func (in *inbox) local(c *call) (error, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return c.err, c.err != nil
}

// replySubscriber is the subscriber Watermill's PubSubBackend listens to for
// the replies of one request: a view of the inbox.
type replySubscriber struct {
	in *inbox
	c  *call
	op string
}

func (s replySubscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	ch := make(chan *message.Message, 1)
	s.in.mu.Lock()
	s.c.ch = ch
	s.in.pending[s.op] = s.c
	s.in.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.in.mu.Lock()
		defer s.in.mu.Unlock()
		delete(s.in.pending, s.op)
		close(ch)
	})
	return ch, nil
}

func (replySubscriber) Close() error { return nil }

// backend returns Watermill's request/reply backend over the bus's
// transport, with replies for results of type R.
func backend[R any](b *Bus) (*requestreply.PubSubBackend[R], error) {
	t := reflect.TypeFor[R]()
	if v, ok := b.backends.Load(t); ok {
		return v.(*requestreply.PubSubBackend[R]), nil
	}
	be, err := newBackend[R](b)
	if err != nil {
		return nil, err
	}
	v, _ := b.backends.LoadOrStore(t, be)
	return v.(*requestreply.PubSubBackend[R]), nil
}

func newBackend[R any](b *Bus) (*requestreply.PubSubBackend[R], error) {
	backend, err := requestreply.NewPubSubBackend(requestreply.PubSubBackendConfig{
		Publisher: b.cfg.replyPub,
		SubscriberConstructor: func(p requestreply.PubSubBackendSubscribeParams) (message.Subscriber, error) {
			o, ok := p.Command.(*outgoing)
			if !ok || o.call == nil {
				return nil, fmt.Errorf("bus: request with a %T", p.Command)
			}
			return replySubscriber{in: b.inbox, c: o.call, op: string(p.OperationID)}, nil
		},
		GenerateSubscribeTopic: func(requestreply.PubSubBackendSubscribeParams) (string, error) {
			return b.replyTopic(), nil
		},
		GeneratePublishTopic: func(p requestreply.PubSubBackendPublishParams) (string, error) {
			if t := p.CommandMessage.Metadata.Get(MetadataReplyTo); t != "" {
				return t, nil
			}
			return "", errors.New("bus: request without a reply topic")
		},
		Logger:           b.wlog,
		AckCommandErrors: true,
	}, replyMarshaler[R]{b: b})
	if err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	return backend, nil
}

// replyMarshaler encodes replies: the result as JSON; the error as its
// message and the registered errors it matches.
type replyMarshaler[R any] struct{ b *Bus }

func (m replyMarshaler[R]) MarshalReply(p requestreply.BackendOnCommandProcessedParams[R]) (*message.Message, error) {
	payload, err := json.Marshal(p.HandlerResult)
	if err != nil {
		return nil, fmt.Errorf("bus: encode result: %w", err)
	}
	msg := errorReply(m.b, p.HandleErr)
	msg.Payload = payload
	if p.HandleErr != nil && p.CommandMessage.Metadata.Get(MetadataReplyTo) == m.b.replyTopic() {
		m.b.inbox.setLocal(p.CommandMessage.Metadata.Get(requestreply.OperationIDMetadataKey), p.HandleErr)
	}
	return msg, nil
}

// errorReply returns a reply message that carries err (none if nil).
func errorReply(b *Bus, err error) *message.Message {
	msg := message.NewMessage(watermill.NewUUID(), []byte("null"))
	if err == nil {
		msg.Metadata.Set(requestreply.HasErrorMetadataKey, "0")
		return msg
	}
	msg.Metadata.Set(requestreply.HasErrorMetadataKey, "1")
	msg.Metadata.Set(requestreply.ErrorMetadataKey, err.Error())
	if codes := b.codes(err); len(codes) > 0 {
		raw, _ := json.Marshal(codes)
		msg.Metadata.Set(errorCodesKey, string(raw))
	}
	return msg
}

func (m replyMarshaler[R]) UnmarshalReply(msg *message.Message) (requestreply.Reply[R], error) {
	var reply requestreply.Reply[R]
	if msg.Metadata.Get(requestreply.HasErrorMetadataKey) == "1" {
		he := &HandlerError{Message: msg.Metadata.Get(requestreply.ErrorMetadataKey)}
		var codes []string
		_ = json.Unmarshal([]byte(msg.Metadata.Get(errorCodesKey)), &codes)
		for _, code := range codes {
			for _, e := range m.b.cfg.errs {
				if e.Error() == code {
					he.errs = append(he.errs, e)
				}
			}
		}
		reply.Error = he
		return reply, nil
	}
	if err := json.Unmarshal(msg.Payload, &reply.HandlerResult); err != nil {
		return reply, fmt.Errorf("bus: decode result: %w", err)
	}
	return reply, nil
}

// replyFailure answers a request whose handler failed on every retry, so
// that its caller does not wait for the timeout.
func (b *Bus) replyFailure(msg *message.Message, err error) {
	op := msg.Metadata.Get(requestreply.OperationIDMetadataKey)
	topic := msg.Metadata.Get(MetadataReplyTo)
	if op == "" || topic == "" {
		return
	}
	reply := errorReply(b, fmt.Errorf("%w: command %q: %w", ErrHandlerFailed, msg.Metadata.Get(MetadataType), shortError(err)))
	reply.Metadata.Set(requestreply.OperationIDMetadataKey, op)
	if perr := b.cfg.replyPub.Publish(topic, reply); perr != nil {
		b.cfg.logger.Warn("bus: could not answer a failed request", "message_uuid", msg.UUID, "error", perr)
	}
}
