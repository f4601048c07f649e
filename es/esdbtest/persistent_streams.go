package esdbtest

import (
	"encoding/json"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Names of the system streams and events of persistent subscriptions.
const (
	psStreamPrefix        = "$persistentsubscription-"
	psCheckpointSuffix    = "-checkpoint"
	psParkedSuffix        = "-parked"
	psCheckpointEventType = "$SubscriptionCheckpoint"
)

// psParkedStream is the stream EventStoreDB parks the messages of a group
// in: `$persistentsubscription-<stream>::<group>-parked`, `$all` for
// groups on `$all`.
func psParkedStream(k psKey) string {
	return psStreamPrefix + k.stream + "::" + k.group + psParkedSuffix
}

// psCheckpointStream is the stream of a group's checkpoints:
// `$persistentsubscription-<stream>::<group>-checkpoint`.
func psCheckpointStream(k psKey) string {
	return psStreamPrefix + k.stream + "::" + k.group + psCheckpointSuffix
}

// psOwnAllStream reports whether a record belongs to the checkpoint or
// parked stream of a `$all` group: like EventStoreDB, `$all` groups never
// deliver those, or they would feed on their own checkpoints.
func psOwnAllStream(rec *record) bool {
	rest, ok := strings.CutPrefix(rec.stream, psStreamPrefix+allStreamName+"::")
	return ok && (strings.HasSuffix(rest, psCheckpointSuffix) || strings.HasSuffix(rest, psParkedSuffix))
}

// systemProposal is an event the server writes itself.
func systemProposal(eventType, contentType string, data []byte) proposal {
	return proposal{id: uuid.New(), eventType: eventType, contentType: contentType, data: data, metadata: []byte{}}
}

// park appends a link to rec to the parked stream name, as EventStoreDB
// does: type `$>`, data "<revision>@<stream>". It reports false when the
// parked stream cannot be written (a user tombstoned it): the message is
// then dropped, where EventStoreDB would log the failed write.
func (s *store) park(name string, rec *record) bool {
	data := []byte(strconv.FormatUint(rec.revision, 10) + "@" + rec.stream)
	_, err := s.append(name, expectation{kind: expectAny}, []proposal{systemProposal(linkEventType, contentTypeBinary, data)})
	return err == nil
}

// parkedCount is the number of messages in a parked stream: its events that
// reads still return.
func (s *store) parkedCount(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st == nil || st.tombstone != nil {
		return 0
	}
	return int64(uint64(len(st.events)) - s.firstVisibleLocked(st, s.metaLocked(name)))
}

// takeParked returns the records the oldest limit (all for a negative
// limit) parked links of a parked stream point to, and truncates the
// stream past them with `$tb`, as EventStoreDB does on a replay. Links
// whose target is gone are dropped.
func (s *store) takeParked(name string, limit int) []*record {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st == nil || st.tombstone != nil {
		return nil
	}
	m := s.metaLocked(name)
	first, end := s.firstVisibleLocked(st, m), uint64(len(st.events))
	if limit >= 0 && first+uint64(limit) < end {
		end = first + uint64(limit)
	}
	if end <= first {
		return nil
	}
	var out []*record
	for _, link := range st.events[first:end] {
		if rev, target, ok := parseLink(link); ok {
			if rec := s.resolveLinkLocked(rev, target); rec != nil {
				out = append(out, rec)
			}
		}
	}
	s.writeLocked(metaStreamPrefix+name, systemProposal(metadataEventType, contentTypeJSON, m.withTruncateBefore(end)))
	s.notifyLocked()
	return out
}

// checkpointStreamMeta is the metadata EventStoreDB gives a checkpoint
// stream before its first checkpoint: the two newest are kept, and only
// admins read and write it.
const checkpointStreamMeta = `{"$maxCount":2,"$acl":{"$r":"$admins","$w":"$admins","$d":"$admins","$mr":"$all","$mw":"$admins"}}`

// writeCheckpoint appends a `$SubscriptionCheckpoint` event with data to a
// checkpoint stream, after the stream's metadata when it has none.
func (s *store) writeCheckpoint(name string, data []byte) {
	s.mu.Lock()
	if !s.hasMetaLocked(name) {
		s.writeLocked(metaStreamPrefix+name, systemProposal(metadataEventType, contentTypeJSON, []byte(checkpointStreamMeta)))
	}
	s.mu.Unlock()
	// Only a user's tombstone of the checkpoint stream fails this write;
	// the group then keeps its checkpoint in memory.
	_, _ = s.append(name, expectation{kind: expectAny}, []proposal{systemProposal(psCheckpointEventType, contentTypeJSON, data)})
}

// deleteSystemStreams soft-deletes the streams of a deleted group; streams
// that were never written are skipped.
func (s *store) deleteSystemStreams(names ...string) {
	for _, name := range names {
		_, _ = s.softDelete(name, expectation{kind: expectAny}) // a missing stream is the only failure
	}
}

// parkLocked parks a message: a link in the group's parked stream, and the
// message counts as settled for checkpoints.
func (p *persistentService) parkLocked(g *psGroup, m *psMessage) {
	m.owner, m.deadline = nil, time.Time{}
	p.srv.store.park(psParkedStream(g.key), m.rec)
	p.settleLocked(g, m)
}

// settleLocked records that a message was acknowledged, skipped or parked,
// moves the checkpointable point past every settled message at the head of
// the pending ones, and checkpoints when due. Replayed parked messages are
// outside checkpointing, as in EventStoreDB.
func (p *persistentService) settleLocked(g *psGroup, m *psMessage) {
	if m.replayed || m.settled {
		return
	}
	m.settled = true
	for len(g.pending) > 0 && g.pending[0].settled {
		g.settled = g.pending[0].rec
		g.pending = g.pending[1:]
		g.since++
	}
	if g.since == 0 {
		return
	}
	// The maximum forces a checkpoint; the minimum is checked when
	// checkpointAfter has passed. So a maximum below the minimum is
	// valid, and the maximum wins.
	if g.since >= g.settings.maxCheckpointCount {
		p.checkpointLocked(g)
		return
	}
	if g.timer == nil && g.settings.checkpointAfter > 0 {
		g.timer = time.AfterFunc(g.settings.checkpointAfter, func() { p.checkpointDue(g) })
	}
}

// checkpointDue runs when checkpointAfter has passed since a message was
// settled: it checkpoints if at least minCheckpointCount messages were
// settled since the last checkpoint, and waits another period otherwise.
func (p *persistentService) checkpointDue(g *psGroup) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g.timer = nil
	select {
	case <-p.srv.done:
		return
	default:
	}
	if p.groups[g.key] != g || g.since == 0 {
		return
	}
	if g.since >= g.settings.minCheckpointCount {
		p.checkpointLocked(g)
		return
	}
	g.timer = time.AfterFunc(g.settings.checkpointAfter, func() { p.checkpointDue(g) })
}

// checkpointLocked writes the group's checkpoint stream: the position of
// the newest record up to which everything is settled, as a JSON string,
// "<revision>" for a stream and "C:<commit>/P:<prepare>" for `$all`.
func (p *persistentService) checkpointLocked(g *psGroup) {
	g.stopTimer()
	if g.settled == nil || g.settled == g.checkpoint {
		return
	}
	data, _ := json.Marshal(g.positionText(g.settled)) // a string always marshals
	p.srv.store.writeCheckpoint(psCheckpointStream(g.key), data)
	g.checkpoint, g.since = g.settled, 0
}

// stopTimers disarms the checkpoint timers of every group, when the server
// closes.
func (p *persistentService) stopTimers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.groups {
		g.stopTimer()
	}
}

// stopTimer disarms the checkpoint timer.
func (g *psGroup) stopTimer() {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

// pinnedLocked returns the consumer of a message under the pinned
// strategies: the key (the stream, or for PinnedByCorrelation the
// `$correlationId` of the event's metadata when it has one) hashes onto one
// of psBuckets buckets, and a bucket stays with the consumer it was first
// given to (the one with the fewest buckets) until that consumer leaves.
// It returns nil when that consumer has no free slot: the message waits.
// Needs the store's lock.
func (g *psGroup) pinnedLocked(s *store, m *psMessage) *psConsumer {
	if g.buckets == nil {
		g.buckets = make([]*psConsumer, psBuckets)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(g.pinKeyLocked(s, m.rec)))
	b := h.Sum32() % psBuckets
	c := g.buckets[b]
	if c == nil {
		for _, x := range g.consumers {
			if c == nil || x.buckets < c.buckets {
				c = x
			}
		}
		g.buckets[b] = c
		c.buckets++
	}
	if c.free() {
		return c
	}
	return nil
}

// pinKeyLocked is the key a pinned strategy hashes: the stream of the event
// (the link's target when links are resolved), or for PinnedByCorrelation
// its `$correlationId` when it has one. Needs the store's lock.
func (g *psGroup) pinKeyLocked(s *store, rec *record) string {
	if g.settings.resolveLinks && rec.eventType == linkEventType {
		if rev, name, ok := parseLink(rec); ok {
			if target := s.resolveLinkLocked(rev, name); target != nil {
				rec = target
			}
		}
	}
	if g.settings.strategy == strategyPinnedByCorr {
		if id := correlationID(rec.metadata); id != "" {
			return id
		}
	}
	return rec.stream
}

// correlationID returns the `$correlationId` string of JSON event
// metadata, "" when there is none.
func correlationID(meta []byte) string {
	if len(meta) == 0 {
		return ""
	}
	var fields struct {
		CorrelationID any `json:"$correlationId"`
	}
	if json.Unmarshal(meta, &fields) != nil {
		return ""
	}
	id, _ := fields.CorrelationID.(string)
	return id
}

// releaseBuckets unassigns the buckets of a consumer that left: they go to
// the remaining consumers as their keys come up again.
func (g *psGroup) releaseBuckets(c *psConsumer) {
	for i, x := range g.buckets {
		if x == c {
			g.buckets[i] = nil
		}
	}
	c.buckets = 0
}
