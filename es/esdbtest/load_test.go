package esdbtest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// sampleDataset has every field of the format: explicit and default IDs,
// positions and created times, JSON data kept with its spacing, base64
// data, and a metadata stream.
const sampleDataset = `{"stream":"order-1","type":"OrderPlaced","id":"5f1c2a40-8a8e-4d6a-9a55-0c1e6f3b7a10","data":{"total" : 3},"metadata":{"$correlationId":"c-1"},"position":1000,"created":"2020-01-12T18:16:26.2459170Z","revision":0}

{"stream":"blob-9","type":"Chunk","contentType":"application/octet-stream","dataBase64":"AAEC","metadataBase64":"","id":"6a2d3b51-9b9f-4e7b-8b66-1d2f7a4c8b21","position":1300}
  {"stream":"$$order-1","type":"$metadata","id":"7b3e4c62-acaf-4f8c-9c77-2e3f8b5d9c32","data":{"$maxCount":5}}
{"stream":"order-1","type":"OrderPaid","id":"8c4f5d73-bdb0-4a9d-8d88-3f4a9c6eaD43","data":"paid","revision":1}
`

func TestLoadKeepsEverything(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	srv := esdbtest.New(t, esdbtest.WithClock(func() time.Time { return clock }))
	require.NoError(t, srv.Load(strings.NewReader(sampleDataset)))

	all := srv.All()
	require.Len(t, all, 4)
	first := all[0]
	assert.Equal(t, uuid.MustParse("5f1c2a40-8a8e-4d6a-9a55-0c1e6f3b7a10"), first.ID)
	assert.Equal(t, "order-1", first.Stream)
	assert.Equal(t, uint64(0), first.Revision)
	assert.Equal(t, uint64(1000), first.Position)
	assert.Equal(t, "OrderPlaced", first.Type)
	assert.Equal(t, "application/json", first.ContentType)
	assert.Equal(t, `{"total" : 3}`, string(first.Data), "JSON data keeps its bytes")
	assert.Equal(t, `{"$correlationId":"c-1"}`, string(first.Metadata))
	assert.True(t, time.Date(2020, 1, 12, 18, 16, 26, 245917000, time.UTC).Equal(first.Created))

	blob := all[1]
	assert.Equal(t, "blob-9", blob.Stream)
	assert.Equal(t, uint64(1300), blob.Position)
	assert.Equal(t, "application/octet-stream", blob.ContentType)
	assert.Equal(t, []byte{0, 1, 2}, blob.Data)
	assert.Empty(t, blob.Metadata)

	meta, paid := all[2], all[3]
	assert.Equal(t, "$$order-1", meta.Stream)
	assert.Greater(t, meta.Position, blob.Position, "a position left out follows the one before")
	assert.Greater(t, paid.Position, meta.Position)
	assert.True(t, clock.Equal(meta.Created), "a created time left out is the server's clock")
	assert.Equal(t, uint64(1), paid.Revision)
	assert.Equal(t, `"paid"`, string(paid.Data))
	assert.Equal(t, uuid.MustParse("8c4f5d73-bdb0-4a9d-8d88-3f4a9c6ead43"), paid.ID)

	// The client reads what was loaded, and appends continue after it.
	c := newClient(t, srv)
	evs, err := readStream(t, c, "order-1", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, first.ID, evs[0].EventID)
	assert.Equal(t, uint64(1000), evs[0].Position.Commit)
	assert.Equal(t, uint64(1000), evs[0].Position.Prepare)
	assert.Equal(t, int64(1578852986), evs[0].CreatedDate.Unix())
	assert.Equal(t, 245917000, evs[0].CreatedDate.Nanosecond())
	res := appendEvents(t, c, "order-1", esdb.Revision(1), event("Shipped"))
	assert.Equal(t, uint64(2), res.NextExpectedVersion)
	assert.Greater(t, res.CommitPosition, paid.Position)
}

func TestLoadIsAllOrNothing(t *testing.T) {
	const good = `{"stream":"s","type":"A","id":"5f1c2a40-8a8e-4d6a-9a55-0c1e6f3b7a10"}` + "\n"
	for _, tc := range []struct {
		name, line, field, reason string
	}{
		{"not JSON", `{"stream":`, "", "invalid JSON"},
		{"not an object", `["s","A"]`, "", "want a JSON object"},
		{"text after the object", `{"stream":"s","type":"A"} x`, "", "text after the JSON object"},
		{"unknown field", `{"stream":"s","tpye":"A"}`, "tpye", "unknown field"},
		{"no stream", `{"type":"A"}`, "stream", "missing or empty"},
		{"$all", `{"stream":"$all","type":"A"}`, "stream", "$all"},
		{"no type", `{"stream":"s"}`, "type", "missing or empty"},
		{"type not a string", `{"stream":"s","type":7}`, "type", "a string"},
		{"bad id", `{"stream":"s","type":"A","id":"nope"}`, "id", "not a UUID"},
		{"nil id", `{"stream":"s","type":"A","id":"00000000-0000-0000-0000-000000000000"}`, "id", "nil UUID"},
		{"content type", `{"stream":"s","type":"A","contentType":"text/plain"}`, "contentType", "want application/json"},
		{"data twice", `{"stream":"s","type":"A","data":{},"dataBase64":"AA=="}`, "dataBase64", "excludes"},
		{"bad base64", `{"stream":"s","type":"A","metadataBase64":"@@"}`, "metadataBase64", "base64"},
		{"bad created", `{"stream":"s","type":"A","created":"yesterday"}`, "created", "RFC 3339"},
		{"negative position", `{"stream":"s","type":"A","position":-1}`, "position", "an integer"},
		{"zero position", `{"stream":"s","type":"A","position":0}`, "position", "between 1 and 2^62"},
		{"position going back", `{"stream":"t","type":"A","position":100}`, "position", "does not follow"},
		{"wrong revision", `{"stream":"s","type":"A","revision":0}`, "revision", "next revision is 1"},
		{"too large", `{"stream":"s","type":"A","dataBase64":"` + strings.Repeat("A", 200) + `"}`, "", "maximum append size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := esdbtest.New(t, esdbtest.WithMaxAppendSize(100))
			require.NoError(t, srv.Seed("x", esdbtest.Event{Type: "Before"}))
			before := srv.All()

			err := srv.Load(strings.NewReader(good + tc.line + "\n" + good))
			var le *esdbtest.LoadError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, 2, le.Line)
			assert.Equal(t, tc.field, le.Field)
			assert.Contains(t, le.Reason, tc.reason)
			assert.Contains(t, err.Error(), "esdbtest: load: line 2")
			assert.Equal(t, before, srv.All(), "nothing is loaded")
		})
	}
}

func TestLoadAfterTheLog(t *testing.T) {
	srv := esdbtest.New(t)
	c := newClient(t, srv)
	res := appendEvents(t, c, "s", esdb.NoStream{}, event("A"))

	err := srv.Load(strings.NewReader(`{"stream":"s","type":"B","position":1}`))
	var le *esdbtest.LoadError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "position", le.Field)

	require.NoError(t, srv.Load(strings.NewReader(`{"stream":"s","type":"B","revision":1}`)))
	evs, err := readStream(t, c, "s", esdb.ReadStreamOptions{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []uint64{0, 1}, revisions(evs))
	assert.Greater(t, evs[1].Position.Commit, res.CommitPosition)

	require.NoError(t, srv.Load(strings.NewReader("\n\n")), "an empty dataset loads nothing")
	assert.Len(t, srv.All(), 2)

	_, err = c.TombstoneStream(ctxWithTimeout(t), "s", esdb.TombstoneStreamOptions{})
	require.NoError(t, err)
	err = srv.Load(strings.NewReader(`{"stream":"s","type":"C"}`))
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "stream", le.Field)
	assert.Contains(t, le.Reason, "tombstoned")
}

func TestLoadTwice(t *testing.T) {
	srv := esdbtest.New(t)
	require.NoError(t, srv.Load(strings.NewReader(sampleDataset)))
	before := srv.All()
	require.NoError(t, srv.Load(strings.NewReader(sampleDataset)), "a dataset stored already loads as nothing")
	assert.Equal(t, before, srv.All())

	// The first event is stored, a later one is not: the dataset is partly
	// there, which is an error.
	extended := sampleDataset + `{"stream":"order-1","type":"Extra","id":"9d506e84-cec1-4bae-9e99-4a5bad7fbe54"}` + "\n"
	err := srv.Load(strings.NewReader(extended))
	var le *esdbtest.LoadError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 6, le.Line)
	assert.Equal(t, "id", le.Field)
	assert.Equal(t, before, srv.All())
}

func TestLoadIsJournaled(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dataset.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(sampleDataset), 0o644))
	data := filepath.Join(dir, "data")

	srv, err := esdbtest.Start(esdbtest.WithDataDir(data), esdbtest.WithDataset(file))
	require.NoError(t, err)
	loaded := srv.All()
	require.Len(t, loaded, 4)
	c := newClient(t, srv)
	res := appendEvents(t, c, "order-1", esdb.Revision(1), event("Shipped"))
	srv.Close()

	// Restarted, the journal has the dataset and the append after it; the
	// dataset, named again, is not loaded twice.
	srv, err = esdbtest.Start(esdbtest.WithDataDir(data), esdbtest.WithDataset(file))
	require.NoError(t, err)
	defer srv.Close()
	again := srv.All()
	require.Len(t, again, 5)
	for i := range loaded {
		assert.Equal(t, loaded[i].ID, again[i].ID)
		assert.Equal(t, loaded[i].Position, again[i].Position)
		assert.True(t, loaded[i].Created.Equal(again[i].Created))
		assert.Equal(t, loaded[i].Data, again[i].Data)
	}
	assert.Equal(t, res.CommitPosition, again[4].Position)
}

func TestWithDatasetErrors(t *testing.T) {
	_, err := esdbtest.Start(esdbtest.WithDataset(""))
	require.ErrorIs(t, err, esdbtest.ErrInvalidOption)

	_, err = esdbtest.Start(esdbtest.WithDataset(filepath.Join(t.TempDir(), "missing.jsonl")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.jsonl")

	file := filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(`{"stream":"s"}`), 0o644))
	_, err = esdbtest.Start(esdbtest.WithDataset(file))
	var le *esdbtest.LoadError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, file, le.File)
	assert.Equal(t, `esdbtest: load `+file+`: line 1: field "type": missing or empty`, err.Error())
}

// FuzzLoadDataset feeds Load arbitrary datasets: it never panics, and it
// either loads every line, after the log and in order, or returns an error
// and leaves the log as it was.
func FuzzLoadDataset(f *testing.F) {
	f.Add(sampleDataset)
	f.Add(`{"stream":"s","type":"A","position":5}` + "\n" + `{"stream":"s","type":"A","position":5}`)
	f.Add(`{"stream":"s","type":"A","dataBase64":"AA==","data":null}`)
	f.Add("{\"stream\":\"s\",\"type\":\"A\",\"created\":\"2020-01-12T18:16:26Z\",\"revision\":1}\r\n")
	srv := esdbtest.New(f)
	f.Fuzz(func(t *testing.T, dataset string) {
		before := srv.All()
		err := srv.Load(strings.NewReader(dataset))
		after := srv.All()
		if err != nil {
			require.Equal(t, before, after, "a failed load leaves the log as it was")
			return
		}
		lines := 0
		for line := range strings.SplitSeq(dataset, "\n") {
			if strings.TrimSpace(line) != "" {
				lines++
			}
		}
		added := len(after) - len(before)
		require.True(t, added == lines || added == 0, "%d events added for %d lines", added, lines)
		next := map[string]uint64{}
		for i, rec := range after {
			if i > 0 {
				require.Greater(t, rec.Position, after[i-1].Position)
			}
			require.Equal(t, next[rec.Stream], rec.Revision)
			next[rec.Stream]++
		}
	})
}
