package esdbtest

import (
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/protobuf/encoding/protowire"
)

// caughtUp tells the subscriber that it reached the head of the log. An
// EventStoreDB caught-up message is empty; KurrentDB 25 adds the server's
// time and where the subscription stands (see caughtUpStream and
// caughtUpAll).
func caughtUp() *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}
}

// caughtUpStream is the caught-up message of a stream subscription whose
// last revision read is last (-1: none). Reporting KurrentDB 25 or later,
// it carries the timestamp and, unless the stream is empty, the stream
// revision.
func (s *Server) caughtUpStream(last int64) *api.ReadResp {
	m := caughtUp()
	if s.cfg.kurrentDB25() {
		b := s.caughtUpTimestamp()
		if last >= 0 {
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(last))
		}
		m.GetCaughtUp().ProtoReflect().SetUnknown(b)
	}
	return m
}

// caughtUpAll is the caught-up message of a `$all` subscription that has
// scanned the log up to position (0: nothing). Reporting KurrentDB 25 or
// later, it carries the timestamp and, unless the log is empty, the
// position.
func (s *Server) caughtUpAll(position uint64) *api.ReadResp {
	m := caughtUp()
	if s.cfg.kurrentDB25() {
		b := s.caughtUpTimestamp()
		if position > 0 {
			var pos []byte
			pos = protowire.AppendTag(pos, 1, protowire.VarintType)
			pos = protowire.AppendVarint(pos, position)
			pos = protowire.AppendTag(pos, 2, protowire.VarintType)
			pos = protowire.AppendVarint(pos, position)
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendBytes(b, pos)
		}
		m.GetCaughtUp().ProtoReflect().SetUnknown(b)
	}
	return m
}

// caughtUpTimestamp encodes field 1 of KurrentDB's CaughtUp, the server's
// time, which the v4 protocol lacks: the fields KurrentDB 25 adds are sent
// as unknown fields of the v4 message, which clients that know them read.
func (s *Server) caughtUpTimestamp() []byte {
	now := s.store.now()
	var ts []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(now.Unix()))
	ts = protowire.AppendTag(ts, 2, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(now.Nanosecond()))
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(b, ts)
}
