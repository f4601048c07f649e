// Package v4suite builds an esdbtest dataset (see "Datasets" in package
// esdbtest) holding the events that the cases of the EventStore-Client-Go
// v4 test suite which need a populated node read: the suite runs them on
// EventStoreDB's "testdata" docker image, whose log it describes in its
// resources/test files.
//
// The dataset is built from those files, so that the project carries no
// copy of them: every event they show is taken from them (ID, type, data,
// metadata, content type, created time, position), and the events between
// them that the cases count or filter on are generated with the shapes the
// files show:
//
//   - the system events at the start of the log (positions 167 to 3256)
//     and the newest ten of the log (statistics and projection reports);
//   - stream dataset20M-0, 6,000 events, and dataset20M-1800, 2,000
//     events, whose revision r has type eventType-(N + r mod 200) for
//     stream dataset20M-N, data {"somedata" : …} and metadata
//     {"metadata" : …} with the same number, at the positions the filtered
//     `$all` case expects;
//   - one placeholder event at position 3386, where the suite reads `$all`
//     from, standing for records of the image that no file shows, and the
//     earlier revisions of the streams of the newest ten events (type of
//     the stream's next known event, data {}).
//
// Generated events get IDs derived from their stream and revision, and
// created times interpolated between the events of the files around them.
package v4suite

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Module is the module of the v4 client, whose resources/test directory
// Build reads.
const Module = "github.com/EventStore/EventStore-Client-Go/v4"

// The streams the cases read, and their lengths.
const (
	Stream0        = "dataset20M-0"
	Stream1800     = "dataset20M-1800"
	Stream0Len     = 6000
	Stream1800Len  = 2000
	FilterPrefix   = "eventType-194" // the filtered `$all` case's event-type prefix
	placeholder    = "$esdbtest-placeholder"
	readFrom       = 3386 // the `$all` position the suite reads from
	blockLen       = 200  // events of a stream written one after another
	firstPart0     = 2000 // events of dataset20M-0 before dataset20M-1800
	stride1800     = 157  // bytes between two events of dataset20M-1800 in a block
	sizeBase       = 130  // bytes of an event besides its stream name and numbers
	sizePerDigit   = 3    // the number appears in the type, the data and the metadata
	generatedNames = "esdbtest:v4suite:"
)

// ResourcesDir returns the resources/test directory of [Module] in the
// module cache, as `go list -m` finds it from the current directory.
func ResourcesDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", Module).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(exitErr.Stderr))
		}
		return "", fmt.Errorf("v4suite: go list -m %s: %w", Module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("v4suite: %s is not in the module cache (go mod download %s)", Module, Module)
	}
	return filepath.Join(dir, "resources", "test"), nil
}

// FileEvent is an event as the suite's resource files record it.
type FileEvent struct {
	StreamID       string `json:"streamId"`
	StreamRevision struct {
		Value uint64 `json:"value"`
	} `json:"streamRevision"`
	EventID      uuid.UUID `json:"eventId"`
	EventType    string    `json:"eventType"`
	EventData    []byte    `json:"eventData"`
	UserMetadata []byte    `json:"userMetadata"`
	ContentType  string    `json:"contentType"`
	Position     Position  `json:"position"`
	Created      struct {
		Seconds int64 `json:"seconds"`
		Nanos   int64 `json:"nanos"`
	} `json:"created"`
}

// Time returns the created time.
func (e FileEvent) Time() time.Time {
	return time.Unix(e.Created.Seconds, e.Created.Nanos).UTC()
}

// Position is a position in `$all` as the resource files record it.
type Position struct {
	Prepare uint64 `json:"prepare"`
	Commit  uint64 `json:"commit"`
}

// ReadEvents reads a resource file of events, such as "all-e0-e10.json".
func ReadEvents(resources, name string) ([]FileEvent, error) {
	var wrapped []struct {
		Event FileEvent `json:"event"`
	}
	if err := readJSON(resources, name, &wrapped); err != nil {
		return nil, err
	}
	out := make([]FileEvent, len(wrapped))
	for i, w := range wrapped {
		out[i] = w.Event
	}
	return out, nil
}

// ReadFiltered reads the revisions and positions of the first events the
// filtered `$all` case expects.
func ReadFiltered(resources string) ([]uint64, []Position, error) {
	var versions []uint64
	var positions []Position
	if err := readJSON(resources, "all-versions-filtered-stream-194-e0-e30.json", &versions); err != nil {
		return nil, nil, err
	}
	if err := readJSON(resources, "all-positions-filtered-stream-194-e0-e30.json", &positions); err != nil {
		return nil, nil, err
	}
	if len(versions) != len(positions) {
		return nil, nil, fmt.Errorf("v4suite: %d filtered revisions but %d positions", len(versions), len(positions))
	}
	return versions, positions, nil
}

func readJSON(resources, name string, v any) error {
	b, err := os.ReadFile(filepath.Join(resources, name))
	if err != nil {
		return fmt.Errorf("v4suite: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("v4suite: %s: %w", name, err)
	}
	return nil
}

// event is an event of the dataset; known events come from the files.
type event struct {
	FileEvent
	known bool
}

// Build writes the dataset, one event a line in log order, to w, from the
// resource files in the directory resources (see [ResourcesDir]).
func Build(w io.Writer, resources string) error {
	evs, err := layout(resources)
	if err != nil {
		return err
	}
	interpolateCreated(evs)
	bw := bufio.NewWriter(w)
	for _, e := range evs {
		line, err := json.Marshal(datasetLine(e.FileEvent))
		if err != nil {
			return fmt.Errorf("v4suite: %w", err)
		}
		bw.Write(line)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// anchors is what the files fix of the layout.
type anchors struct {
	byKey    map[string]FileEvent // the known events by stream and revision
	blocks   []uint64             // where each block of dataset20M-1800 starts
	first0   uint64               // the position of dataset20M-0 revision 0
	last1800 uint64               // the position of dataset20M-1800's last event
}

// findAnchors places dataset20M-1800's blocks: the first from its
// revision 0, the last from its last revision, others from the filtered
// case where it shows them, the rest spread evenly between; and
// dataset20M-0 so that the filtered case's first event lands where the
// file says, its events one after another.
func findAnchors(known []FileEvent, versions []uint64, positions []Position) (anchors, error) {
	a := anchors{byKey: make(map[string]FileEvent), blocks: make([]uint64, Stream1800Len/blockLen)}
	for _, e := range known {
		a.byKey[key(e.StreamID, e.StreamRevision.Value)] = e
	}
	first, ok := a.byKey[key(Stream1800, 0)]
	last, ok2 := a.byKey[key(Stream1800, Stream1800Len-1)]
	if !ok || !ok2 {
		return anchors{}, fmt.Errorf("v4suite: the files do not show the first and last events of %s", Stream1800)
	}
	a.last1800 = last.Position.Commit
	a.blocks[0] = first.Position.Commit
	a.blocks[len(a.blocks)-1] = a.last1800 - (Stream1800Len-1)%blockLen*stride1800
	found0 := false
	for i, rev := range versions {
		pos := positions[i].Commit
		switch {
		case pos >= a.blocks[0]:
			a.blocks[rev/blockLen] = pos - rev%blockLen*stride1800
		case !found0:
			found0 = true
			a.first0 = pos
			for r := rev; r > 0; r-- {
				a.first0 -= size(Stream0, r-1)
			}
		}
	}
	if !found0 {
		return anchors{}, fmt.Errorf("v4suite: the filtered case shows no event of %s", Stream0)
	}
	fillBlocks(a.blocks)
	return a, nil
}

// layout returns every event of the dataset in log order, without the
// created times of the generated ones.
func layout(resources string) ([]event, error) {
	known, err := knownEvents(resources)
	if err != nil {
		return nil, err
	}
	versions, positions, err := ReadFiltered(resources)
	if err != nil {
		return nil, err
	}
	a, err := findAnchors(known, versions, positions)
	if err != nil {
		return nil, err
	}
	var out []event
	for _, e := range known {
		if e.StreamID != Stream1800 && e.Position.Commit < a.blocks[0] {
			out = append(out, event{FileEvent: e, known: true})
		}
	}
	out = append(out, event{FileEvent: generated(placeholder, 0, readFrom, "$placeholder", nil)})
	// dataset20M-0, first part.
	pos := a.first0
	for r := uint64(0); r < firstPart0; r++ {
		out = append(out, event{FileEvent: numbered(Stream0, 0, r, pos)})
		pos += size(Stream0, r)
	}
	for r := uint64(0); r < Stream1800Len; r++ {
		p := a.blocks[r/blockLen] + r%blockLen*stride1800
		if e, ok := a.byKey[key(Stream1800, r)]; ok {
			if e.Position.Commit != p {
				return nil, fmt.Errorf("v4suite: %s revision %d is at %d in the files, not %d", Stream1800, r, e.Position.Commit, p)
			}
			out = append(out, event{FileEvent: e, known: true})
			continue
		}
		out = append(out, event{FileEvent: numbered(Stream1800, 1800, r, p)})
	}
	// dataset20M-0, the rest: after dataset20M-1800.
	pos = a.last1800 + stride1800
	for r := uint64(firstPart0); r < Stream0Len; r++ {
		out = append(out, event{FileEvent: numbered(Stream0, 0, r, pos)})
		pos += size(Stream0, r)
	}
	var newest []FileEvent
	for _, e := range known {
		if e.Position.Commit > a.last1800 {
			newest = append(newest, e)
		}
	}
	out, err = withNewest(out, newest)
	if err != nil {
		return nil, err
	}
	return out, check(out)
}

// withNewest appends the newest events of the log, the files' last ones,
// after the streams' earlier revisions that no file shows: those are
// generated with the type of the stream's next known event and data {},
// spread evenly between the events before and the newest ones.
func withNewest(out []event, newest []FileEvent) ([]event, error) {
	if len(newest) == 0 {
		return out, nil
	}
	next := make(map[string]uint64)
	for _, e := range out {
		next[e.StreamID] = e.StreamRevision.Value + 1
	}
	var fill []FileEvent
	for _, e := range newest {
		for r := next[e.StreamID]; r < e.StreamRevision.Value; r++ {
			fill = append(fill, generated(e.StreamID, r, 0, e.EventType, []byte("{}")))
		}
		next[e.StreamID] = e.StreamRevision.Value + 1
	}
	lo, hi := out[len(out)-1].Position.Commit, newest[0].Position.Commit
	step := (hi - lo) / uint64(len(fill)+1)
	if step == 0 {
		return nil, fmt.Errorf("v4suite: no room for %d events between positions %d and %d", len(fill), lo, hi)
	}
	for i, e := range fill {
		e.Position = Position{Commit: lo + step*uint64(i+1), Prepare: lo + step*uint64(i+1)}
		out = append(out, event{FileEvent: e})
	}
	for _, e := range newest {
		out = append(out, event{FileEvent: e, known: true})
	}
	return out, nil
}

// knownEvents returns the events of the resource files, each once, in
// position order.
func knownEvents(resources string) ([]FileEvent, error) {
	seen := make(map[uuid.UUID]bool)
	var out []FileEvent
	for _, name := range []string{
		"all-e0-e10.json", "all-c1788-p1788.json", "all-back-c3386-p3386.json", "all-back-e0-e10.json",
		"dataset20M-1800-e0-e10.json", "dataset20M-1800-e1999-e1990.json",
	} {
		evs, err := ReadEvents(resources, name)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if !seen[e.EventID] {
				seen[e.EventID] = true
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b FileEvent) int { return cmp.Compare(a.Position.Commit, b.Position.Commit) })
	return out, nil
}

// fillBlocks spreads the block starts left at 0 evenly between the known
// ones around them.
func fillBlocks(blocks []uint64) {
	for i := 1; i < len(blocks); i++ {
		if blocks[i] != 0 {
			continue
		}
		j := i
		for blocks[j] == 0 {
			j++
		}
		step := (blocks[j] - blocks[i-1]) / uint64(j-i+1)
		for k := i; k < j; k++ {
			blocks[k] = blocks[k-1] + step
		}
	}
}

// check verifies that positions increase and that streams have no gaps.
func check(evs []event) error {
	next := make(map[string]uint64)
	for i, e := range evs {
		if i > 0 && e.Position.Commit <= evs[i-1].Position.Commit {
			return fmt.Errorf("v4suite: %s/%d at position %d does not follow %s/%d at %d", e.StreamID, e.StreamRevision.Value,
				e.Position.Commit, evs[i-1].StreamID, evs[i-1].StreamRevision.Value, evs[i-1].Position.Commit)
		}
		if e.StreamRevision.Value != next[e.StreamID] {
			return fmt.Errorf("v4suite: %s revision %d where %d is next", e.StreamID, e.StreamRevision.Value, next[e.StreamID])
		}
		next[e.StreamID]++
	}
	return nil
}

// numbered returns revision r of stream dataset20M-base: type, data and
// metadata carry base + r mod 200.
func numbered(stream string, base, r, pos uint64) FileEvent {
	n := base + r%blockLen
	e := generated(stream, r, pos, fmt.Sprintf("eventType-%d", n), []byte(fmt.Sprintf(`{"somedata" : %d}`, n)))
	e.UserMetadata = []byte(fmt.Sprintf(`{"metadata" : %d}`, n))
	return e
}

// generated returns an event the files do not show.
func generated(stream string, rev, pos uint64, eventType string, data []byte) FileEvent {
	var e FileEvent
	e.StreamID = stream
	e.StreamRevision.Value = rev
	e.EventID = uuid.NewSHA1(uuid.NameSpaceURL, []byte(fmt.Sprintf("%s%s/%d", generatedNames, stream, rev)))
	e.EventType = eventType
	e.EventData = data
	e.ContentType = "application/json"
	e.Position = Position{Commit: pos, Prepare: pos}
	return e
}

// size is the room revision r of a numbered stream takes in the log.
func size(stream string, r uint64) uint64 {
	return sizeBase + uint64(len(stream)) + sizePerDigit*uint64(len(fmt.Sprint(r%blockLen)))
}

// interpolateCreated gives each generated event a created time on the line
// between the known events around it, by position.
func interpolateCreated(evs []event) {
	prev := -1
	for i := range evs {
		if !evs[i].known {
			continue
		}
		for j := prev + 1; j < i; j++ {
			evs[j].Created.Seconds, evs[j].Created.Nanos = between(evs, prev, i, j)
		}
		prev = i
	}
}

// between interpolates the created time of evs[j] between evs[a] and
// evs[b]; a is -1 when no known event comes first.
func between(evs []event, a, b, j int) (int64, int64) {
	end := evs[b].Time()
	if a < 0 {
		return end.Unix(), int64(end.Nanosecond())
	}
	start := evs[a].Time()
	span := float64(evs[b].Position.Commit - evs[a].Position.Commit)
	part := float64(evs[j].Position.Commit-evs[a].Position.Commit) / span
	t := start.Add(time.Duration(part * float64(end.Sub(start)))).Truncate(time.Microsecond)
	return t.Unix(), int64(t.Nanosecond())
}

// line is a dataset line (see "Datasets" in package esdbtest).
type line struct {
	Stream         string          `json:"stream"`
	Type           string          `json:"type"`
	ID             string          `json:"id"`
	ContentType    string          `json:"contentType"`
	Data           json.RawMessage `json:"data,omitempty"`
	DataBase64     *string         `json:"dataBase64,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	MetadataBase64 *string         `json:"metadataBase64,omitempty"`
	Created        string          `json:"created"`
	Position       uint64          `json:"position"`
	Revision       uint64          `json:"revision"`
}

// datasetLine returns the dataset line of an event. Bytes that are compact
// JSON are written as JSON, others in base64, so that they load unchanged.
func datasetLine(e FileEvent) line {
	l := line{
		Stream:      e.StreamID,
		Type:        e.EventType,
		ID:          e.EventID.String(),
		ContentType: e.ContentType,
		Created:     e.Time().Format(time.RFC3339Nano),
		Position:    e.Position.Commit,
		Revision:    e.StreamRevision.Value,
	}
	l.Data, l.DataBase64 = encodeBytes(e.EventData)
	l.Metadata, l.MetadataBase64 = encodeBytes(e.UserMetadata)
	return l
}

func encodeBytes(b []byte) (json.RawMessage, *string) {
	if len(b) == 0 {
		return nil, nil
	}
	var compact bytes.Buffer
	if json.Compact(&compact, b) == nil && bytes.Equal(compact.Bytes(), b) {
		return json.RawMessage(b), nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

func key(stream string, rev uint64) string {
	return fmt.Sprintf("%s/%d", stream, rev)
}
