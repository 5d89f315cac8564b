//go:build !linux

package main

// hugePages does nothing outside Linux.
func hugePages([]byte) {}

func prewarmHeap(int) {}
