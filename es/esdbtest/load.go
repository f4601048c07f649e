package esdbtest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// maxLoadPosition bounds explicit positions, so that the positions after
// them cannot overflow.
const maxLoadPosition = 1 << 62

// LoadError reports a dataset that [Server.Load] or [WithDataset] cannot
// load; nothing of it was loaded.
type LoadError struct {
	// File is the dataset file of [WithDataset], "" for [Server.Load].
	File string
	// Line is the 1-based line number.
	Line int
	// Field is the JSON field at fault, "" when it is the line itself.
	Field string
	// Reason says what is wrong.
	Reason string
}

// Error says where the dataset is wrong: file, line, field and reason.
func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString("esdbtest: load")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	fmt.Fprintf(&b, ": line %d: ", e.Line)
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Reason)
	return b.String()
}

// datasetLine is one line of a dataset as written.
type datasetLine struct {
	Stream         string          `json:"stream"`
	Type           string          `json:"type"`
	ID             *string         `json:"id"`
	ContentType    string          `json:"contentType"`
	Data           json.RawMessage `json:"data"`
	DataBase64     *string         `json:"dataBase64"`
	Metadata       json.RawMessage `json:"metadata"`
	MetadataBase64 *string         `json:"metadataBase64"`
	Created        *string         `json:"created"`
	Position       *uint64         `json:"position"`
	Revision       *uint64         `json:"revision"`
}

// loadEvent is a dataset event that passed the checks that need no log.
type loadEvent struct {
	line     int
	stream   string
	revision *uint64
	position uint64    // 0: the next position
	created  time.Time // zero: the server's clock
	p        proposal
}

// Load reads a dataset from r (the format is in the package documentation,
// section "Datasets") and writes its events at the end of the log, as a
// copy of another server's log: with the IDs, types, content types, data
// and metadata given, and the positions and created times given, if any.
// Nothing is checked against expected revisions, and a soft-deleted stream
// stays deleted ($tb hides the new events). Subscriptions see the events,
// and with [WithDataDir] they are journaled like appends.
//
// Loading is all or nothing: when it fails, the log is unchanged; bad
// input is reported as a [*LoadError] naming the line and the field, and
// an event the log cannot take (a position not above the log's head, a
// revision the stream does not have next, a tombstoned stream) too. A
// dataset whose first
// event is already stored (same ID in the same stream) must be stored
// entirely, and then Load does nothing: loading the same dataset again,
// after a restart with [WithDataDir] for instance, is harmless.
func (s *Server) Load(r io.Reader) error {
	_, err := s.store.load(r, s.cfg.maxAppendSize)
	return err
}

// WithDataset loads the dataset file at path when the server starts, after
// the journal of [WithDataDir] if any, with [Server.Load]: a bad dataset
// makes [Start] fail. An empty path is an error.
func WithDataset(path string) Option {
	return func(c *config) error {
		if path == "" {
			return fmt.Errorf("%w: empty dataset path", ErrInvalidOption)
		}
		c.dataset = path
		return nil
	}
}

// loadFile loads the dataset file at path into the store.
func (s *store) loadFile(path string, maxSize int, logger *slog.Logger) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("esdbtest: load dataset: %w", err)
	}
	defer f.Close()
	n, err := s.load(f, maxSize)
	if le := (*LoadError)(nil); errors.As(err, &le) {
		le.File = path
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	head := s.headLocked()
	s.mu.Unlock()
	logger.Info("esdbtest: loaded dataset", "file", path, "events", n, "head", head)
	return nil
}

// load parses a dataset and writes it; it returns how many events it
// wrote (0 when the dataset was stored already).
func (s *store) load(r io.Reader, maxSize int) (int, error) {
	events, err := parseDataset(r, maxSize)
	if err != nil {
		return 0, err
	}
	if len(events) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.journal.err(); err != nil {
		return 0, err
	}
	if done, err := s.loadedLocked(events); done || err != nil {
		return 0, err
	}
	recs, next, err := s.placeLocked(events)
	if err != nil {
		return 0, err
	}
	for _, rec := range recs {
		s.indexLocked(s.streamLocked(rec.stream), rec)
		s.log = append(s.log, rec)
		s.journal.add(rec)
	}
	s.nextPos = next
	s.notifyLocked()
	if err := s.journal.err(); err != nil {
		return 0, err
	}
	return len(recs), nil
}

// loadedLocked reports whether the dataset is stored already: its first
// event is, so every event must be.
func (s *store) loadedLocked(events []loadEvent) (bool, error) {
	if _, ok := s.storedLocked(events[0]); !ok {
		return false, nil
	}
	for _, e := range events {
		rev, ok := s.storedLocked(e)
		switch {
		case !ok:
			return false, &LoadError{Line: e.line, Field: "id", Reason: "the dataset's first event is stored already but this one is not: a part of the dataset is loaded"}
		case e.revision != nil && *e.revision != rev:
			return false, &LoadError{Line: e.line, Field: "revision", Reason: fmt.Sprintf("the event is stored already at revision %d", rev)}
		case e.position != 0 && e.position != s.streams[e.stream].events[rev].position:
			return false, &LoadError{Line: e.line, Field: "position", Reason: fmt.Sprintf("the event is stored already at position %d", s.streams[e.stream].events[rev].position)}
		}
	}
	return true, nil
}

// storedLocked returns the revision of a dataset event in its stream, if
// an event with its ID is there.
func (s *store) storedLocked(e loadEvent) (uint64, bool) {
	st := s.streams[e.stream]
	if st == nil {
		return 0, false
	}
	rev, ok := st.ids[e.p.id]
	return rev, ok
}

// placeLocked gives each event its revision, position and created time,
// checking them against the log, and returns the records to write and the
// next position after them. It changes nothing.
func (s *store) placeLocked(events []loadEvent) ([]*record, uint64, error) {
	head, next, now := s.headLocked(), s.nextPos, s.now()
	revs := make(map[string]uint64)
	recs := make([]*record, 0, len(events))
	for _, e := range events {
		st := s.streams[e.stream]
		if st != nil && st.tombstone != nil {
			return nil, 0, &LoadError{Line: e.line, Field: "stream", Reason: fmt.Sprintf("stream %q is tombstoned", e.stream)}
		}
		rev, seen := revs[e.stream]
		if !seen {
			rev = uint64(st.last() + 1)
		}
		if e.revision != nil && *e.revision != rev {
			return nil, 0, &LoadError{Line: e.line, Field: "revision", Reason: fmt.Sprintf("%d where the stream's next revision is %d", *e.revision, rev)}
		}
		pos := e.position
		switch {
		case pos == 0:
			pos = next
		case pos <= head:
			return nil, 0, &LoadError{Line: e.line, Field: "position", Reason: fmt.Sprintf("%d does not follow position %d of the record before it", pos, head)}
		}
		created := e.created
		if created.IsZero() {
			created = now
		}
		recs = append(recs, &record{
			id: e.p.id, stream: e.stream, revision: rev, position: pos,
			eventType: e.p.eventType, contentType: e.p.contentType, created: created,
			data: e.p.data, metadata: e.p.metadata,
		})
		revs[e.stream] = rev + 1
		head = pos
		next = max(next, pos+uint64(recordOverhead+len(e.stream)+e.p.size()))
	}
	return recs, next, nil
}

// parseDataset reads every line of a dataset and checks what needs no log.
func parseDataset(r io.Reader, maxSize int) ([]loadEvent, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxRecvMsgSize)
	var events []loadEvent
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		e, err := parseDatasetLine(text, line, maxSize)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, &LoadError{Line: line + 1, Reason: fmt.Sprintf("longer than %d bytes", maxRecvMsgSize)}
	} else if err != nil {
		return nil, fmt.Errorf("esdbtest: load: read dataset: %w", err)
	}
	return events, nil
}

// parseDatasetLine decodes and checks one line.
func parseDatasetLine(text []byte, line, maxSize int) (loadEvent, error) {
	fail := func(field, format string, args ...any) (loadEvent, error) {
		return loadEvent{}, &LoadError{Line: line, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	var dl datasetLine
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&dl); err != nil {
		field, reason := jsonProblem(err)
		return fail(field, "%s", reason)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail("", "text after the JSON object")
	}
	e := loadEvent{line: line, stream: dl.Stream, revision: dl.Revision}
	switch dl.Stream {
	case "":
		return fail("stream", "missing or empty")
	case allStreamName:
		return fail("stream", "$all is not a stream one can write to")
	}
	if dl.Type == "" {
		return fail("type", "missing or empty")
	}
	id, err := datasetID(dl.ID)
	if err != nil {
		return fail("id", "%v", err)
	}
	contentType := dl.ContentType
	switch contentType {
	case "":
		contentType = contentTypeJSON
	case contentTypeJSON, contentTypeBinary:
	default:
		return fail("contentType", "%q: want %s or %s", contentType, contentTypeJSON, contentTypeBinary)
	}
	data, err := datasetBytes(dl.Data, dl.DataBase64)
	if err != nil {
		return fail("dataBase64", "%v", err)
	}
	metadata, err := datasetBytes(dl.Metadata, dl.MetadataBase64)
	if err != nil {
		return fail("metadataBase64", "%v", err)
	}
	if dl.Created != nil {
		if e.created, err = time.Parse(time.RFC3339Nano, *dl.Created); err != nil {
			return fail("created", "%q is not an RFC 3339 time", *dl.Created)
		}
	}
	if dl.Position != nil {
		if *dl.Position == 0 || *dl.Position > maxLoadPosition {
			return fail("position", "%d is not between 1 and 2^62", *dl.Position)
		}
		e.position = *dl.Position
	}
	e.p = proposal{id: id, eventType: dl.Type, contentType: contentType, data: data, metadata: metadata}
	if e.p.size() > maxSize {
		return fail("", "event of %d bytes (data, metadata and type) is over the maximum append size %d", e.p.size(), maxSize)
	}
	return e, nil
}

// jsonProblem names the field and the reason of a decoding error.
func jsonProblem(err error) (field, reason string) {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return "", "want a JSON object"
	case errors.As(err, &typeErr):
		return typeErr.Field, fmt.Sprintf("a JSON %s where %s is wanted", typeErr.Value, describeType(typeErr.Field))
	case errors.As(err, &syntaxErr):
		return "", "invalid JSON: " + syntaxErr.Error()
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unquoted, uerr := strconv.Unquote(name); uerr == nil {
			name = unquoted
		}
		return name, "unknown field"
	}
	return "", "invalid JSON: " + err.Error()
}

// describeType says what a field of a dataset line holds.
func describeType(field string) string {
	switch field {
	case "position", "revision":
		return "an integer from 0 to 2^64-1"
	default:
		return "a string"
	}
}

// datasetID parses the id field: absent is a random ID.
func datasetID(s *string) (uuid.UUID, error) {
	if s == nil {
		return uuid.New(), nil
	}
	id, err := uuid.Parse(*s)
	if err != nil {
		return uuid.Nil, fmt.Errorf("%q is not a UUID", *s)
	}
	if id == uuid.Nil {
		return uuid.Nil, errors.New("the nil UUID is not an event ID")
	}
	return id, nil
}

// datasetBytes returns the bytes of a data or metadata field: the JSON
// value as written, or the base64 form.
func datasetBytes(raw json.RawMessage, b64 *string) ([]byte, error) {
	isNull := len(raw) == 0 || string(raw) == "null"
	if b64 == nil {
		if isNull {
			return []byte{}, nil
		}
		return bytes.Clone(raw), nil
	}
	if !isNull {
		return nil, errors.New("excludes the JSON form of the same field")
	}
	b, err := base64.StdEncoding.DecodeString(*b64)
	if err != nil {
		return nil, errors.New("not standard base64")
	}
	return b, nil
}
