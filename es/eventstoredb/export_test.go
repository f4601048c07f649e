package eventstoredb

// WaitConnecting waits until no connection attempt of s is under way:
// Close does not wait for them, goroutine-leak checks do.
func WaitConnecting(s *Store) { s.core.WaitConnecting() }
