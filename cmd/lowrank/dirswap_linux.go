//go:build linux

package main

import "golang.org/x/sys/unix"

// exchange swaps the directory entries a and b in one atomic step
// (renameat2 with RENAME_EXCHANGE, Linux 3.15+): at every instant each
// name refers to one complete folder. It fails on file systems without
// support (then the caller falls back to two renames).
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
