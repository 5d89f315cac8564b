package main

import (
	"runtime"
	"syscall"
)

// hugePages asks the kernel to back the fresh buffer b with transparent
// huge pages (MADV_HUGEPAGE, honoured where THP is "madvise" or
// "always"): its first touch then takes one fault per 2 MiB instead of
// one per 4 KiB. On a virtual machine, where a fault is dear, that took
// the first 16 MiB tensor's read from 60–75 ms to 7–32 ms. Only advice:
// an error changes nothing.
func hugePages(b []byte) {
	if len(b) >= hugePageMin {
		_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	}
}

// prewarmHeap faults in n bytes of the Go heap on transparent huge pages
// and gives them back to the heap, where the allocations that follow find
// them already mapped (see prewarm).
func prewarmHeap(n int) {
	b := make([]byte, n)
	hugePages(b)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	runtime.KeepAlive(b)
	b = nil
	runtime.GC()
}
