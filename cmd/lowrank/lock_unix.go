//go:build linux || darwin || freebsd

package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockPart takes the lock of a part's folder (flock on path, created if
// needed), so that two processes never write one part at once (a
// replacement pod started while the old one is still stopping); it fails
// at once when another process holds it. The lock goes with the process.
func lockPart(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lowrank: %s: cannot create the part's lock: %w", path, unwrapPathErr(err))
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lowrank: %s: another process is working on this part; expected one process per part (is an older worker still stopping?)", path)
		}
		// File systems without locks (some network ones): go on unlocked.
		return func() {}, nil
	}
	return func() { f.Close() }, nil
}

// lockJoin takes the join lock of the folder output out (flock on the
// folder itself), waiting while another process holds it, so that two
// joins of one folder take turns: the second then finds it joined. A join
// puts a new folder in place of out, so the lock is retaken until it is
// held on the folder out names. Where the file system has no locks, it
// goes on unlocked.
func lockJoin(out string) (func(), error) {
	for {
		f, err := os.Open(out)
		if err != nil {
			return nil, fmt.Errorf("lowrank: %s: %w", out, unwrapPathErr(err))
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if !errors.Is(err, unix.EWOULDBLOCK) {
				break
			}
			if cmdContext.Err() != nil {
				f.Close()
				return nil, errInterrupted
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			f.Close()
			return func() {}, nil
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(out)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() { f.Close() }, nil
		}
		f.Close() // out was replaced meanwhile: lock the folder it names now
		if err2 != nil {
			return nil, fmt.Errorf("lowrank: %s: %w", out, unwrapPathErr(err2))
		}
	}
}
