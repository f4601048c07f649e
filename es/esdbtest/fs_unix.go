//go:build unix

package esdbtest

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f, released when f is closed, or
// fails at once if another process holds it.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// syncDir makes a file created in dir survive a crash: it syncs the
// directory entry.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
