package lowrank

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/lowrank-go/lowrank/la"
)

// The host pool keeps the large temporaries of the randomized method on
// the CPU (the test matrix Ω, the sketch's Q and B) between
// factorizations, one sync.Pool per length, so that a workload of many
// factorizations of the same shapes (a model's layers, a service's
// requests) reuses them instead of faulting in fresh pages for each: on
// the virtual machines we measured a fresh 4 KiB page costs ≈ 15 µs, and
// a 4096×11008 rank-256 factorization's three come to 28 MB, ≈ 100 ms of
// faults while the Go heap is still growing. sync.Pool drops what is not
// reused within two garbage collections, so an idle program keeps
// nothing. Buffers the caller receives (the factors) never come from it.

// hostBuf is a Mat whose storage came from the host pool.
type hostBuf[T Float] struct {
	m    la.Mat
	data []T
}

// hostKey is a pool's length in elements and element size in bytes.
type hostKey struct {
	n    int
	size uintptr
}

var (
	hostPools sync.Map // hostKey → *sync.Pool of *[]T
	// hostLengths counts the pools, which are kept for hostMaxLengths
	// lengths at most (a program that factorizes ever new shapes then
	// allocates as without the pool).
	hostLengths atomic.Int64
)

const (
	hostMin        = 1 << 20 // bytes: smaller buffers come from the heap's size classes
	hostMaxLengths = 64
)

// getHost returns n elements: a pooled buffer of exactly that length
// (cleared when zero is set), or a new one.
func getHost[T Float](n int, zero bool) []T {
	if p, ok := hostPools.Load(hostKey{n, unsafe.Sizeof(T(0))}); ok {
		if b, ok := p.(*sync.Pool).Get().(*[]T); ok {
			if zero {
				clear(*b)
			}
			return *b
		}
	}
	return make([]T, n)
}

// putHost gives b, which nothing reads or writes any more, to the pool.
func putHost[T Float](b []T) {
	size := unsafe.Sizeof(T(0))
	if len(b)*int(size) < hostMin {
		return
	}
	k := hostKey{len(b), size}
	p, ok := hostPools.Load(k)
	if !ok {
		if hostLengths.Add(1) > hostMaxLengths {
			hostLengths.Add(-1)
			return
		}
		var loaded bool
		if p, loaded = hostPools.LoadOrStore(k, new(sync.Pool)); loaded {
			hostLengths.Add(-1)
		}
	}
	b = b[:len(b):len(b)]
	p.(*sync.Pool).Put(&b)
}
