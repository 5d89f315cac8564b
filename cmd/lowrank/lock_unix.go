//go:build linux || darwin || freebsd

package main

import (
	"errors"
	"fmt"
	"os"

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

// lockFolder takes a lock on the folder output dir itself (flock on the
// folder), exclusive for a run that writes the whole folder or joins it,
// shared for one part of a --shard run (its parts may run at once); it
// fails at once when another process holds it otherwise, so that two runs
// never build one folder together. The lock is on the folder's inode: a
// run that replaced the folder leaves the new one free. The returned
// function releases it.
func lockFolder(dir string, exclusive bool) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lowrank: %s: cannot open the output folder to lock it: %w", dir, unwrapPathErr(err))
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lowrank: %s: another lowrank process is writing this folder; expected one run at a time on an output folder (or the parts of one --shard run)", dir)
		}
		return func() {}, nil // file systems without locks: go on unlocked
	}
	return func() { f.Close() }, nil
}
