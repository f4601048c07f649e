package esdbtest

import (
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/protobuf/encoding/protowire"
)

// A catch-up subscription says when it switches from history to live
// (caught-up) and back (fell-behind), as EventStoreDB does since 23.10.
// Those messages are empty; KurrentDB 25 adds the server's time and where
// the subscription stands: the last stream revision or `$all` position
// read. The v4 protocol lacks those fields: reporting 25.0 or later, the
// server sends them as unknown fields of the v4 messages, which clients
// that know them read.

// caughtUp is EventStoreDB's caught-up message.
func caughtUp() *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}
}

// fellBehind is EventStoreDB's fell-behind message.
func fellBehind() *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_FellBehind_{FellBehind: &api.ReadResp_FellBehind{}}}
}

// caughtUpStream is the caught-up message of a stream subscription whose
// last revision read is last (-1: none).
func (s *Server) caughtUpStream(last int64) *api.ReadResp {
	m := caughtUp()
	m.GetCaughtUp().ProtoReflect().SetUnknown(s.streamDetails(last))
	return m
}

// fellBehindStream is caughtUpStream's fell-behind counterpart. Without a
// revision to report it carries no details at all: KurrentDB-Client-Go
// v1.4.2 reads a fell-behind message with a timestamp but neither a
// revision nor a position as a `$all` position and crashes.
func (s *Server) fellBehindStream(last int64) *api.ReadResp {
	m := fellBehind()
	if last >= 0 {
		m.GetFellBehind().ProtoReflect().SetUnknown(s.streamDetails(last))
	}
	return m
}

// caughtUpAll is the caught-up message of a `$all` subscription that has
// scanned the log up to position (0: nothing).
func (s *Server) caughtUpAll(position uint64) *api.ReadResp {
	m := caughtUp()
	m.GetCaughtUp().ProtoReflect().SetUnknown(s.allDetails(position))
	return m
}

// fellBehindAll is caughtUpAll's fell-behind counterpart; without a
// position to report it carries no details (see fellBehindStream).
func (s *Server) fellBehindAll(position uint64) *api.ReadResp {
	m := fellBehind()
	if position > 0 {
		m.GetFellBehind().ProtoReflect().SetUnknown(s.allDetails(position))
	}
	return m
}

// streamDetails encodes KurrentDB 25's fields of a stream subscription's
// caught-up or fell-behind message: the timestamp and, unless the stream
// is empty, the stream revision (field 2). Nil below 25.0.
func (s *Server) streamDetails(last int64) []byte {
	if !s.cfg.kurrentDB25() {
		return nil
	}
	b := s.timestampField()
	if last >= 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(last))
	}
	return b
}

// allDetails encodes KurrentDB 25's fields of a `$all` subscription's
// caught-up or fell-behind message: the timestamp and, unless the log is
// empty, the position (field 3). Nil below 25.0.
func (s *Server) allDetails(position uint64) []byte {
	if !s.cfg.kurrentDB25() {
		return nil
	}
	b := s.timestampField()
	if position > 0 {
		var pos []byte
		pos = protowire.AppendTag(pos, 1, protowire.VarintType)
		pos = protowire.AppendVarint(pos, position)
		pos = protowire.AppendTag(pos, 2, protowire.VarintType)
		pos = protowire.AppendVarint(pos, position)
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, pos)
	}
	return b
}

// timestampField encodes field 1, the server's time, a
// google.protobuf.Timestamp.
func (s *Server) timestampField() []byte {
	now := s.store.now()
	var ts []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(now.Unix()))
	ts = protowire.AppendTag(ts, 2, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(now.Nanosecond()))
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(b, ts)
}
