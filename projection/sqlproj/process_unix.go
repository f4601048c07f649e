//go:build unix

package sqlproj

import (
	"errors"
	"syscall"
)

// processGone reports whether no process of this ID runs on this host.
func processGone(pid int64) bool {
	if pid <= 0 || pid > 1<<31-1 {
		return false
	}
	return errors.Is(syscall.Kill(int(pid), 0), syscall.ESRCH)
}
