//go:build !unix

package sqlproj

// processGone reports false where processes cannot be probed: leases of
// dead processes expire after their time-to-live.
func processGone(int64) bool { return false }
