package bus

import (
	"context"
	"errors"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// stopper is how a bus stops without losing work: once it begins to stop,
// its subscriptions take no new message, the handlers under way finish
// with their contexts intact (for at most the stop timeout, then their
// contexts are cancelled), and only then are the transport's
// subscriptions ended and its subscribers closed.
type stopper struct {
	once     sync.Once
	stopping chan struct{} // closed when the bus begins to stop

	mu       sync.Mutex
	released bool
	cancels  []context.CancelFunc // of the subscriptions' contexts
	closers  []message.Subscriber // subscribers the router closed early
}

func newStopper() *stopper { return &stopper{stopping: make(chan struct{})} }

// begin marks the bus as stopping.
func (s *stopper) begin() { s.once.Do(func() { close(s.stopping) }) }

// isStopping reports whether the bus began to stop.
func (s *stopper) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// release ends the subscriptions and closes the subscribers that the router
// asked to close: the handlers are done, or the stop timeout has passed and
// their contexts are cancelled.
func (s *stopper) release() error {
	s.begin()
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		return nil
	}
	s.released = true
	cancels, closers := s.cancels, s.closers
	s.cancels, s.closers = nil, nil
	s.mu.Unlock()
	// Close first, then cancel: a closed watermill-nats subscriber takes
	// no new message, while one whose context is cancelled may still be
	// handing one over as it closes its channel.
	var errs []error
	for _, sub := range closers {
		errs = append(errs, sub.Close())
	}
	for _, cancel := range cancels {
		cancel()
	}
	return errors.Join(errs...)
}

// holdSubscriber is a subscriber of the router's, between it and the
// transport's: when the router stops, it hands the router no new message
// (those the transport delivers meanwhile are left to it, unacknowledged),
// but the transport's subscription, and so the contexts and
// acknowledgements of the messages under way, live on until the bus
// releases them. Watermill's router would otherwise cancel the handlers'
// contexts and close the subscribers as it begins to stop, and a message
// whose acknowledgement the transport no longer waits for is redelivered or
// lost.
type holdSubscriber struct {
	message.Subscriber
	s *stopper
}

func (h holdSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	inner, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.s.mu.Lock()
	if h.s.released {
		h.s.mu.Unlock()
		cancel()
		return nil, ErrStopped
	}
	h.s.cancels = append(h.s.cancels, cancel)
	h.s.mu.Unlock()
	in, err := h.Subscriber.Subscribe(inner, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	// Hands messages over until the router stops (ctx), then takes what the
	// transport still delivers without handing it over or settling it, so
	// that the transport never waits to hand a message over as its
	// subscription ends. Those messages are left to the transport, which
	// delivers them again after the subscription (a nack would have
	// JetStream deliver them again at once, to this stopping
	// subscription). Ends with the transport's subscription.
	go func() {
		defer func() {
			for range in {
			}
		}()
		defer close(out)
		for {
			select {
			case msg, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- msg:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Close closes the transport's subscriber once the bus releases its
// subscriptions: the router calls it as it begins to stop.
func (h holdSubscriber) Close() error {
	h.s.mu.Lock()
	if !h.s.released {
		h.s.closers = append(h.s.closers, h.Subscriber)
		h.s.mu.Unlock()
		return nil
	}
	h.s.mu.Unlock()
	return h.Subscriber.Close()
}

// errLeft marks the error of a handler that failed while the bus was
// stopping: its message is left to the transport (nacked, or not
// acknowledged), to be delivered again, instead of being dropped or sent
// to the poison queue.
var errLeft = errors.New("bus: stopping: message left to the transport")

// leftToTransport reports whether err is a handler's failure during a stop.
func leftToTransport(err error) bool { return errors.Is(err, errLeft) }

// stoppablePublisher is the bus's publisher on its default in-process
// transport, whose Publish returns once the message is handled: once the
// bus begins to stop, its handlers take no new message, so a publication
// under way returns [ErrStopped] at once instead of waiting for the stop
// timeout. That publication goes on in the background until the bus
// releases its subscriptions, which discards it.
type stoppablePublisher struct {
	message.Publisher
	s *stopper
}

func (p stoppablePublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.s.isStopping() {
		return ErrStopped
	}
	done := make(chan error, 1)
	go func() { done <- p.Publisher.Publish(topic, msgs...) }()
	select {
	case err := <-done:
		return err
	case <-p.s.stopping:
		return ErrStopped
	}
}
