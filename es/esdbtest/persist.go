package esdbtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// JournalFile is the name of the journal in the directory of [WithDataDir].
const JournalFile = "journal.efj"

// WithDataDir keeps the log in dir (created if needed) so that it survives
// a restart of the process: [Start] loads the journal found there, and every
// write is appended to it and synced to disk before the client gets its
// answer. Events, stream metadata, tombstones and the system streams of
// persistent subscriptions (checkpoints, parked messages) are kept, and
// the groups too: the Create, Update and Delete calls that succeeded are
// recorded in [GroupsFile] and made again at start, and each group resumes
// after the last checkpoint in its checkpoint stream (messages acknowledged
// after it are delivered again, as on EventStoreDB). A journal whose last
// record was cut short by a crash loads without that record (it was never
// acknowledged); any other damage makes Start fail with a
// [*CorruptJournalError]. If a write to the journal fails, every call
// fails from then on with the gRPC status Internal. One process at a time
// may use a directory. By default the log lives in memory only.
func WithDataDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return fmt.Errorf("%w: empty data directory", ErrInvalidOption)
		}
		c.dataDir = dir
		return nil
	}
}

// WithLogger sets the logger of the server's few messages: what it loaded
// from its data directory, a torn record it dropped, a failed journal
// write. A nil logger is an error; by default nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// journal is the durable copy of a store's log. Its fields are guarded by
// the store's mutex, except failed.
type journal struct {
	path    string
	f       *os.File
	pending []*record // written to the log, not yet to the file
	buf     []byte
	logger  *slog.Logger
	failed  atomic.Pointer[error] // set once a write failed; the journal then stops
}

// add queues a record written to the log for the next commit. A nil
// journal (a server in memory) does nothing.
func (j *journal) add(rec *record) {
	if j == nil {
		return
	}
	j.pending = append(j.pending, rec)
}

// commit writes the queued records to the file and syncs it, before the
// writes are acknowledged. After a failure the journal stops writing, and
// every call fails (see journalUnary).
func (j *journal) commit() {
	if j == nil || len(j.pending) == 0 || j.failed.Load() != nil {
		return
	}
	j.buf = j.buf[:0]
	for _, rec := range j.pending {
		j.buf = appendFrame(j.buf, rec)
	}
	j.pending = j.pending[:0]
	_, err := j.f.Write(j.buf)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		err = fmt.Errorf("esdbtest: write journal %s: %w", j.path, err)
		j.failed.Store(&err)
		j.logger.Error("esdbtest: journal write failed; the server now fails every call", "err", err)
	}
}

// err returns the error that stopped the journal, nil if none.
func (j *journal) err() error {
	if j == nil {
		return nil
	}
	if p := j.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// close commits what is pending and closes the file.
func (j *journal) close() error {
	if j == nil {
		return nil
	}
	j.commit()
	return errors.Join(j.err(), j.f.Close()) // closing releases the lock
}

// openJournal loads the journal of dir into the empty store s, dropping a
// torn last record, and keeps the file open for the writes to come.
func (s *store) openJournal(dir string, logger *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("esdbtest: data directory: %w", err)
	}
	path := filepath.Join(dir, JournalFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("esdbtest: open journal: %w", err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("esdbtest: journal %s is in use by another process: %w", path, err)
	}
	end, err := s.loadJournal(f, path, logger)
	if err != nil {
		_ = f.Close()
		return err
	}
	if err := cutAt(f, end, dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("esdbtest: open journal %s: %w", path, err)
	}
	s.journal = &journal{path: path, f: f, logger: logger}
	return nil
}

// cutAt drops what follows the good records (a torn tail), so new frames
// follow good ones, and makes the file and its directory entry durable.
func cutAt(f *os.File, end int64, dir string) error {
	if err := f.Truncate(end); err != nil {
		return err
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return syncDir(dir)
}

// loadJournal restores every record of the file into s and returns where
// the good records end.
func (s *store) loadJournal(f *os.File, path string, logger *slog.Logger) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("esdbtest: read journal: %w", err)
	}
	if len(b) < len(journalMagic) && strings.HasPrefix(journalMagic, string(b)) {
		// New, or torn while its header was written.
		if _, err := f.WriteAt([]byte(journalMagic), 0); err != nil {
			return 0, fmt.Errorf("esdbtest: write journal: %w", err)
		}
		logger.Info("esdbtest: new journal", "file", path, "records", 0)
		return int64(len(journalMagic)), nil
	}
	if !strings.HasPrefix(string(b), journalMagic) {
		return 0, &CorruptJournalError{File: path, Offset: 0, Reason: "not an esdbtest journal (bad magic)"}
	}
	off := len(journalMagic)
	events := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for off < len(b) {
		rec, n, err := readFrame(b[off:])
		if errors.Is(err, errTornFrame) {
			logger.Warn("esdbtest: dropped a torn record at the end of the journal (a crash while it was written; it was never acknowledged)",
				"file", path, "offset", off, "bytes", len(b)-off)
			break
		}
		if err == nil {
			err = s.restoreLocked(rec)
		}
		if err != nil {
			return 0, &CorruptJournalError{File: path, Offset: int64(off), Reason: err.Error()}
		}
		off += n
		events++
	}
	logger.Info("esdbtest: loaded journal", "file", path, "records", events, "streams", len(s.streams), "head", s.headLocked())
	return int64(off), nil
}

// restoreLocked puts a record read from the journal back into the log,
// checking that it continues the log where it stands.
func (s *store) restoreLocked(rec *record) error {
	// Positions only increase; a loaded dataset (see Server.Load) may
	// place records closer together than the server's own writes do.
	if rec.position == 0 || len(s.log) > 0 && rec.position <= s.headLocked() {
		return fmt.Errorf("position %d does not follow position %d", rec.position, s.headLocked())
	}
	st := s.streamLocked(rec.stream)
	if st.tombstone != nil {
		return fmt.Errorf("record after the tombstone of stream %q", rec.stream)
	}
	if rec.revision == tombstoneRevision && rec.eventType == tombstoneEventType {
		st.tombstone = rec
	} else {
		if rec.revision != uint64(len(st.events)) {
			return fmt.Errorf("stream %q: revision %d where %d is next", rec.stream, rec.revision, len(st.events))
		}
		s.indexLocked(st, rec)
	}
	s.log = append(s.log, rec)
	s.nextPos = max(s.nextPos, rec.position+uint64(recordOverhead+len(rec.stream)+len(rec.data)+len(rec.metadata)+len(rec.eventType)))
	return nil
}

// journalErr returns the error that stopped the journal, nil if none.
func (s *Server) journalErr() error {
	return s.store.journal.err()
}

// journalUnary fails a call with Internal (not Unavailable, which would
// send the client into a reconnect loop) once the journal has failed: its
// answer could acknowledge a write that is not on disk.
func (s *Server) journalUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.journalErr(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp, err := handler(ctx, req)
	if jerr := s.journalErr(); jerr != nil {
		return nil, status.Error(codes.Internal, jerr.Error())
	}
	if err == nil && isGroupChange(info.FullMethod) {
		if gerr := s.groups.record(info.FullMethod, req); gerr != nil {
			return nil, status.Error(codes.Internal, gerr.Error())
		}
	}
	return resp, err
}

// journalStream is journalUnary for streaming calls: no message leaves
// once the journal has failed.
func (s *Server) journalStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if s.store.journal == nil {
		return handler(srv, ss)
	}
	if err := s.journalErr(); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return handler(srv, &journalCheckedStream{ServerStream: ss, srv: s})
}

type journalCheckedStream struct {
	grpc.ServerStream
	srv *Server
}

func (c *journalCheckedStream) SendMsg(m any) error {
	if err := c.srv.journalErr(); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return c.ServerStream.SendMsg(m)
}

// isGroupChange reports whether a method creates, updates or deletes a
// persistent subscription group.
func isGroupChange(method string) bool {
	return method == methodPSCreate || method == methodPSUpdate || method == methodPSDelete
}
