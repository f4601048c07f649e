package esdriver

import (
	"time"

	"github.com/eventfold/eventfold/es"
)

// IsDeleted reports whether m marks a soft-deleted stream: its `$tb` is
// [DeletedTruncateBefore].
func IsDeleted(m es.StreamMetadata) bool { return m.TruncateBefore == DeletedTruncateBefore }

// Retains reports whether the metadata m of a stream keeps one of its
// events: the event's revision, the stream's last revision, when the event
// was created, and the current time (for `$maxAge`). Reads and
// subscriptions skip the events it does not keep.
func Retains(m es.StreamMetadata, revision, lastRevision uint64, created, now time.Time) bool {
	if revision < m.TruncateBefore {
		return false
	}
	if m.MaxCount > 0 && lastRevision >= m.MaxCount && revision <= lastRevision-m.MaxCount {
		return false
	}
	if m.MaxAge > 0 && !created.After(now.Add(-m.MaxAge)) {
		return false
	}
	return true
}

// FirstRetained returns the first revision of a stream whose last revision
// is last that `$tb` and `$maxCount` of m keep (`$maxAge` depends on each
// event's time: see [Retains]). A read starts there, and a store may
// scavenge the events before it.
func FirstRetained(m es.StreamMetadata, last uint64) uint64 {
	lo := m.TruncateBefore
	if m.MaxCount > 0 && last >= m.MaxCount {
		lo = max(lo, last-m.MaxCount+1)
	}
	return lo
}
