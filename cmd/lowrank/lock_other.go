//go:build !(linux || darwin || freebsd)

package main

// lockPart does nothing here: no flock.
func lockPart(string) (func(), error) { return func() {}, nil }

// lockFolder does nothing here: no flock.
func lockFolder(string, bool) (func(), error) { return func() {}, nil }
