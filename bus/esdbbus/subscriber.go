package esdbbus

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/eventstoredb"
)

// Subscriber is a Watermill subscriber whose subscriptions are consumers
// of one persistent subscription group per topic. Make it with
// [Transport.Subscriber].
type Subscriber struct {
	t     *Transport
	group string
	done  chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	cancels []context.CancelFunc
	groups  []eventstoredb.Group // reply groups, deleted by Close
	wg      sync.WaitGroup
}

var _ message.Subscriber = (*Subscriber)(nil)

// Subscribe creates the group on topic's source unless it exists, and
// returns the messages the group hands this consumer, one at a time: the
// next comes after the previous one's ack or nack. The channel closes
// when ctx ends or the subscriber closes.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	src := s.t.source(topic)
	g := eventstoredb.Group{Stream: src.Stream, Name: s.group}
	settings := s.t.cfg.settings
	settings.Filter = src.Filter
	if isReplies(s.group) {
		settings.Start = eventstoredb.StartAtEnd()
	}
	if err := s.t.store.EnsureGroup(ctx, g, settings); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	s.cancels = append(s.cancels, cancel)
	if isReplies(s.group) {
		s.groups = append(s.groups, g)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	out := make(chan *message.Message)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer cancel()
		s.run(ctx, g, settings, out)
	}()
	return out, nil
}

// run consumes group g until ctx ends, starting over after the Store gave
// up (recreating the group if it was deleted).
func (s *Subscriber) run(ctx context.Context, g eventstoredb.Group, settings eventstoredb.GroupSettings, out chan<- *message.Message) {
	log := s.t.cfg.logger
	for {
		err := s.consume(ctx, g, out)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, es.ErrInvalidArgument) {
			log.ErrorContext(ctx, "esdbbus: cannot subscribe", "group", g.String(), "error", err)
			return
		}
		log.WarnContext(ctx, "esdbbus: subscription failed; starting over", "group", g.String(), "error", err, "wait", s.t.cfg.retryWait)
		t := time.NewTimer(s.t.cfg.retryWait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		if errors.Is(err, eventstoredb.ErrGroupNotFound) {
			if err := s.t.store.EnsureGroup(ctx, g, settings); err != nil {
				log.WarnContext(ctx, "esdbbus: cannot create the group", "group", g.String(), "error", err)
			}
		}
	}
}

// consume hands over the messages of one subscription until it fails (its
// error) or ctx ends.
func (s *Subscriber) consume(ctx context.Context, g eventstoredb.Group, out chan<- *message.Message) error {
	for m, err := range s.t.store.SubscribeGroup(ctx, g, eventstoredb.SubscribeGroupOptions{BufferSize: s.t.cfg.buffer}) {
		if err != nil {
			return err
		}
		msg := fromEvent(m)
		msg.SetContext(ctx)
		select {
		case out <- msg:
		case <-ctx.Done():
			return ctx.Err() // unacked: the server delivers it again
		}
		var serr error
		select {
		case <-msg.Acked():
			serr = m.Ack()
		case <-msg.Nacked():
			serr = m.Nack(eventstoredb.NackRetry, "nacked by its handler")
		case <-ctx.Done():
			return ctx.Err()
		}
		if serr != nil {
			s.t.cfg.logger.WarnContext(ctx, "esdbbus: cannot settle a message; the server will deliver it again",
				"group", g.String(), "uuid", msg.UUID, "error", serr)
		}
	}
	return ctx.Err()
}

// Close ends the subscriptions, waits for their goroutines, and deletes
// the groups of a bus's replies (each bus instance has its own). Messages
// in flight stay unacknowledged, for the server to deliver again.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	cancels, groups := s.cancels, s.groups
	s.cancels, s.groups = nil, nil
	s.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
	s.wg.Wait()
	var errs []error
	for _, g := range groups {
		ctx, cancel := context.WithTimeout(context.Background(), eventstoredb.DefaultCallTimeout)
		if err := s.t.store.DeleteGroup(ctx, g); err != nil && !errors.Is(err, eventstoredb.ErrGroupNotFound) {
			errs = append(errs, err)
		}
		cancel()
	}
	return errors.Join(errs...)
}
