package esdbtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
	"google.golang.org/protobuf/proto"
)

// GroupsFile is the name of the file, in the directory of [WithDataDir],
// that keeps the persistent subscription groups: the Create, Update and
// Delete calls that succeeded, in journal frames.
const GroupsFile = "groups.efj"

// Full method names of the calls that change groups.
const (
	methodPSCreate = "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Create"
	methodPSUpdate = "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Update"
	methodPSDelete = "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Delete"
)

// groupLog records the calls that changed groups, so that a restart can
// make them again. Guarded by mu.
type groupLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	n    uint64
}

// groupOp is one recorded call.
type groupOp struct {
	method string
	req    proto.Message
	key    psKey
}

// record appends a call that succeeded and syncs the file.
func (l *groupLog) record(method string, req any) error {
	if l == nil {
		return nil
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return fmt.Errorf("esdbtest: record %s: not a protobuf message", method)
	}
	data, err := proto.Marshal(msg)
	if err != nil {
		return fmt.Errorf("esdbtest: record %s: %w", method, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	frame := appendFrame(nil, &record{stream: method, revision: l.n, position: l.n, eventType: "op", data: data, metadata: []byte{}})
	if _, err := l.f.Write(frame); err != nil {
		return fmt.Errorf("esdbtest: write %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("esdbtest: write %s: %w", l.path, err)
	}
	return nil
}

func (l *groupLog) close() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}

// openGroups reads the groups file of dir, recreates the groups it keeps
// (each resuming after its last checkpoint), and returns the log for the
// calls to come.
func (s *Server) openGroups(dir string) (*groupLog, error) {
	path := filepath.Join(dir, GroupsFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("esdbtest: read %s: %w", path, err)
	}
	ops, end, err := decodeGroupOps(b, path)
	if err != nil {
		return nil, err
	}
	if end < len(b) {
		s.cfg.logger.Warn("esdbtest: dropped a torn record at the end of the groups file", "file", path, "offset", end)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("esdbtest: open %s: %w", path, err)
	}
	if err := cutAt(f, int64(end), dir); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("esdbtest: open %s: %w", path, err)
	}
	groups := s.replayGroups(ops)
	s.cfg.logger.Info("esdbtest: loaded persistent subscription groups", "file", path, "groups", groups)
	return &groupLog{path: path, f: f, n: uint64(len(ops))}, nil
}

// decodeGroupOps decodes the frames of a groups file and returns where the
// good ones end.
func decodeGroupOps(b []byte, path string) ([]groupOp, int, error) {
	var ops []groupOp
	off := 0
	for off < len(b) {
		rec, n, err := readFrame(b[off:])
		if errors.Is(err, errTornFrame) {
			break
		}
		var op groupOp
		if err == nil {
			op, err = decodeGroupOp(rec)
		}
		if err != nil {
			return nil, 0, &CorruptJournalError{File: path, Offset: int64(off), Reason: err.Error()}
		}
		ops = append(ops, op)
		off += n
	}
	return ops, off, nil
}

// decodeGroupOp decodes one recorded call and names its group.
func decodeGroupOp(rec *record) (groupOp, error) {
	op := groupOp{method: rec.stream}
	var err error
	switch rec.stream {
	case methodPSCreate:
		req := &persistent.CreateReq{}
		if err = proto.Unmarshal(rec.data, req); err == nil {
			var g *psGroup
			if g, err = newGroup(req.GetOptions()); err == nil {
				op.key = psKey{stream: g.key.stream, group: req.GetOptions().GetGroupName()}
			}
		}
		op.req = req
	case methodPSUpdate:
		req := &persistent.UpdateReq{}
		if err = proto.Unmarshal(rec.data, req); err == nil {
			var stream string
			stream, _, err = updateSource(req.GetOptions())
			op.key = psKey{stream: stream, group: req.GetOptions().GetGroupName()}
		}
		op.req = req
	case methodPSDelete:
		req := &persistent.DeleteReq{}
		if err = proto.Unmarshal(rec.data, req); err == nil {
			_, all := req.GetOptions().GetStreamOption().(*persistent.DeleteReq_Options_All)
			op.key.stream, err = psStream(req.GetOptions().GetStreamIdentifier(), all)
			op.key.group = req.GetOptions().GetGroupName()
		}
		op.req = req
	default:
		return op, fmt.Errorf("unknown call %q", rec.stream)
	}
	return op, err
}

// replayGroups makes the Create and Update calls of the groups that exist
// at the end of ops, in order (deleted groups are skipped: their delete
// already wrote to the log), then moves each group past its last
// checkpoint. It returns how many groups there are.
func (s *Server) replayGroups(ops []groupOp) int {
	live := make(map[psKey][]groupOp)
	var order []psKey
	for _, op := range ops {
		switch op.method {
		case methodPSCreate:
			live[op.key] = []groupOp{op}
			order = append(order, op.key)
		case methodPSDelete:
			delete(live, op.key)
		default:
			live[op.key] = append(live[op.key], op)
		}
	}
	// The calls only read their context to set trailers, which fails
	// harmlessly outside a gRPC call; Start has no context to give.
	ctx := context.Background()
	count := 0
	for _, k := range order {
		calls := live[k]
		if len(calls) == 0 || calls[0].method != methodPSCreate {
			continue
		}
		delete(live, k) // a key created twice replays once
		count++
		for _, op := range calls {
			var err error
			if op.method == methodPSCreate {
				_, err = s.ps.Create(ctx, op.req.(*persistent.CreateReq))
			} else {
				_, err = s.ps.Update(ctx, op.req.(*persistent.UpdateReq))
			}
			if err != nil {
				s.cfg.logger.Warn("esdbtest: could not recreate a persistent subscription group", "stream", k.stream, "group", k.group, "err", err)
			}
		}
		s.resumeGroup(k)
	}
	return count
}

// resumeGroup moves a recreated group past the position of the last
// checkpoint in its checkpoint stream, as EventStoreDB resumes a group.
func (s *Server) resumeGroup(k psKey) {
	p := s.ps
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[k]
	if g == nil {
		return
	}
	st := s.store
	st.mu.Lock()
	defer st.mu.Unlock()
	cs := st.streams[psCheckpointStream(k)]
	if cs == nil || cs.tombstone != nil || st.firstVisibleLocked(cs, st.metaLocked(cs.name)) >= uint64(len(cs.events)) {
		return
	}
	var text string
	if json.Unmarshal(cs.events[len(cs.events)-1].data, &text) != nil {
		return
	}
	if g.all {
		c, _, ok := strings.Cut(strings.TrimPrefix(text, "C:"), "/")
		commit, err := strconv.ParseUint(c, 10, 64)
		if !ok || err != nil {
			return
		}
		g.nextIdx, g.minPos = st.indexAfterLocked(commit), commit+1
		if i := st.indexFromLocked(commit); i < len(st.log) && st.log[i].position == commit {
			g.checkpoint = st.log[i]
		}
		return
	}
	rev, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return
	}
	g.nextRev = rev + 1
	if src := st.streams[k.stream]; src != nil && rev < uint64(len(src.events)) {
		g.checkpoint = src.events[rev]
	}
}
