package sqlstore

// SetGroupHook makes the writer of s call hook with the size of each group
// of writes before it runs it. Set it before the first write.
func SetGroupHook(s *Store, hook func(n int)) { s.groupHook = hook }

// Queued returns the number of writes waiting for the writer of s.
func Queued(s *Store) int { return int(s.queued.Load()) }

// WithScavengeBatch sets the bounds of a scavenge's transactions: events
// deleted and streams visited per transaction, candidate streams per query.
func WithScavengeBatch(rows, streams, page int) Option {
	return func(c *config) error {
		c.scavengeRows, c.scavengeStreams, c.scavengePage = rows, streams, page
		return nil
	}
}
