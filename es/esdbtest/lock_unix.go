//go:build unix

package esdbtest

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f, released when f is closed, or
// fails at once if another process holds it.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
