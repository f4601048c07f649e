package jetstream

import "github.com/eventfold/eventfold/bus/bustest"

// BusTransport returns t as the bus's transport suite takes it, with the
// topics of the test under prefix.
func (t *Transport) BusTransport(prefix string) bustest.Transport {
	return bustest.Transport{Publisher: t.pub, Subscribers: t.subscriber,
		ReplyPublisher: t.replyPub, ReplySubscribers: t.replySubscriber, TopicPrefix: prefix}
}
