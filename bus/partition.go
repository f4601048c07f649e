package bus

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
)

// partition is the handler of one of the topics of a command type
// ([WithCommandConcurrency]): the command type's handler under a router
// handler name, a topic and a consumer of its own.
type partition struct {
	cqrs.CommandHandler
	name, topic, consumer string
}

// HandlerName returns the partition's router handler name.
func (p partition) HandlerName() string { return p.name }

// partitions returns the handlers of the topics of a command type, whose
// topic and consumer are topic and consumer: one, under those names, or
// b.parts, suffixed "-0", "-1", and so on.
func (b *Bus) partitions(h cqrs.CommandHandler, topic, consumer string) []partition {
	if b.parts == 1 {
		return []partition{{CommandHandler: h, name: h.HandlerName(), topic: topic, consumer: consumer}}
	}
	ps := make([]partition, b.parts)
	for i := range ps {
		s := "-" + strconv.Itoa(i)
		ps[i] = partition{CommandHandler: h, name: h.HandlerName() + s, topic: topic + s, consumer: consumer + s}
	}
	return ps
}

// spreader publishes each command to one of the n partitions of its
// topic: an idle one if there is one, else the least busy, looking from
// the next in turn. The count of a partition's commands under way is
// exact on a transport whose publish waits until the message is handled
// (the default GoChannel); on a broker it spreads commands in turn.
type spreader struct {
	message.Publisher
	n      int
	topics sync.Map // topic → *spread
}

// spread is the state of the partitions of one topic.
type spread struct {
	topics []string
	next   atomic.Uint32
	busy   []atomic.Int32 // publishes under way, by partition
}

// Publish publishes msgs to a partition of topic.
func (s *spreader) Publish(topic string, msgs ...*message.Message) error {
	v, ok := s.topics.Load(topic)
	if !ok {
		sp := &spread{topics: make([]string, s.n), busy: make([]atomic.Int32, s.n)}
		for i := range sp.topics {
			sp.topics[i] = topic + "-" + strconv.Itoa(i)
		}
		v, _ = s.topics.LoadOrStore(topic, sp)
	}
	sp := v.(*spread)
	i := sp.pick()
	defer sp.busy[i].Add(-1)
	return s.Publisher.Publish(sp.topics[i], msgs...)
}

// pick chooses a partition and counts a publish under way on it.
func (sp *spread) pick() int {
	n := len(sp.busy)
	start := int(sp.next.Add(1) % uint32(n))
	best, least := start, int32(-1)
	for k := range n {
		i := (start + k) % n
		if sp.busy[i].CompareAndSwap(0, 1) {
			return i
		}
		if c := sp.busy[i].Load(); least < 0 || c < least {
			best, least = i, c
		}
	}
	sp.busy[best].Add(1)
	return best
}
