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
// topic. On a transport whose publish returns once the message is handled
// (waits, as the default GoChannel's), it picks the first idle partition,
// so that a lone caller keeps to one handler goroutine, else the least
// busy, looking from the next in turn. On others, whose publishes return
// at once, it takes them in turn.
type spreader struct {
	message.Publisher
	n      int
	waits  bool
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
	if !s.waits {
		return s.Publisher.Publish(sp.topics[sp.next.Add(1)%uint32(s.n)], msgs...)
	}
	i := sp.pick()
	defer sp.busy[i].Add(-1)
	return s.Publisher.Publish(sp.topics[i], msgs...)
}

// pick chooses a partition and counts a publish under way on it.
func (sp *spread) pick() int {
	for i := range sp.busy {
		if sp.busy[i].CompareAndSwap(0, 1) {
			return i
		}
	}
	n := len(sp.busy)
	start := int(sp.next.Add(1) % uint32(n))
	best, least := start, sp.busy[start].Load()
	for k := 1; k < n; k++ {
		i := (start + k) % n
		if c := sp.busy[i].Load(); c < least {
			best, least = i, c
		}
	}
	sp.busy[best].Add(1)
	return best
}
