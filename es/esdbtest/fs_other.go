//go:build !unix

package esdbtest

import "os"

// lockFile does nothing where flock is missing: one process at a time per
// data directory is then up to the user.
func lockFile(*os.File) error { return nil }

// syncDir does nothing where directories cannot be synced.
func syncDir(string) error { return nil }
