package esdbtest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleRecords() []*record {
	created := time.Unix(1700000000, 123456700)
	return []*record{
		{id: uuid.New(), stream: "order-1", revision: 0, position: 128, eventType: "Placed",
			contentType: contentTypeJSON, created: created, data: []byte(`{"n":1}`), metadata: []byte{}},
		{id: uuid.New(), stream: "$$order-1", revision: 0, position: 300, eventType: metadataEventType,
			contentType: contentTypeJSON, created: created, data: []byte(`{"$tb":1}`), metadata: []byte(`{}`)},
		{id: uuid.New(), stream: "gone", revision: tombstoneRevision, position: 500, eventType: tombstoneEventType,
			contentType: contentTypeBinary, created: created, data: []byte{}, metadata: []byte{}},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var buf []byte
	recs := sampleRecords()
	for _, r := range recs {
		buf = appendFrame(buf, r)
	}
	for _, want := range recs {
		got, n, err := readFrame(buf)
		require.NoError(t, err)
		assert.Equal(t, want.id, got.id)
		assert.Equal(t, want.stream, got.stream)
		assert.Equal(t, want.revision, got.revision)
		assert.Equal(t, want.position, got.position)
		assert.Equal(t, want.eventType, got.eventType)
		assert.Equal(t, want.contentType, got.contentType)
		assert.True(t, want.created.Equal(got.created))
		assert.Equal(t, want.data, got.data)
		assert.Equal(t, want.metadata, got.metadata)
		buf = buf[n:]
	}
	assert.Empty(t, buf)
}

func TestFrameTornAndCorrupt(t *testing.T) {
	one := appendFrame(nil, sampleRecords()[0])
	two := appendFrame(append([]byte(nil), one...), sampleRecords()[1])
	for cut := 0; cut < len(one); cut++ {
		_, _, err := readFrame(one[:cut])
		require.ErrorIs(t, err, errTornFrame, "cut at %d", cut)
	}
	zeros := append(append([]byte(nil), one[:20]...), make([]byte, len(one))...)
	_, _, err := readFrame(zeros)
	require.ErrorIs(t, err, errTornFrame, "a tail of zeros is torn")

	damaged := append([]byte(nil), two...)
	damaged[frameHeaderSize+3] ^= 1 // the payload of the first of two frames
	_, _, err = readFrame(damaged)
	require.Error(t, err)
	require.NotErrorIs(t, err, errTornFrame)

	damaged = append([]byte(nil), two...)
	damaged[1] ^= 1 // the length of the first of two frames
	_, _, err = readFrame(damaged)
	require.Error(t, err)
	require.NotErrorIs(t, err, errTornFrame)
}

// FuzzReadFrame feeds the journal decoder arbitrary bytes: it returns a
// record, errTornFrame or an error, never panics, and a record it returns
// encodes back to the same frame.
func FuzzReadFrame(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(appendFrame(nil, r))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := readFrame(b)
		if err != nil {
			if rec != nil || n != 0 {
				t.Fatalf("error %v with a record", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("size %d of %d bytes", n, len(b))
		}
		again := appendFrame(nil, rec)
		if string(again) != string(b[:n]) {
			// Varints have one canonical encoding but decoders accept
			// others: re-decode instead of comparing bytes.
			back, _, err := readFrame(again)
			if err != nil || back.stream != rec.stream || back.revision != rec.revision || back.position != rec.position {
				t.Fatalf("record does not survive a round trip: %v", err)
			}
		}
	})
}
