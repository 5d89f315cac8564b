package main

import (
	"sync/atomic"
	"unsafe"

	"github.com/lowrank-go/lowrank"
)

// The buffer pool: the float32 (or float64) values of a tensor that has
// been written are kept for the next tensor of the same number of
// elements, instead of allocating a fresh 16–200 MiB slice for each one.
// A fresh slice is zeroed or faulted in page by page by the kernel (a
// 256 MiB model cost 25 000 page faults and a third of the command's CPU
// time in the kernel), a reused one is not.
//
// The pool belongs to the memory budget and is bounded by it: the bytes it
// holds count against the budget next to the tensors in flight, and a
// tensor that needs them takes them back (acquire evicts the oldest
// buffers first); without a budget (the system's memory unknown) it holds
// at most maxPooled buffers, as it does with one. Evicted buffers are
// simply dropped for the garbage collector, as every buffer was before.
// A buffer is only handed out for a tensor of exactly its length, and the
// reader overwrites every element (safetensors' ReadFloat32s), so no value
// of an earlier tensor can show through.

// maxPooled is the most buffers the pool keeps: enough for the few
// distinct tensor sizes of a model's layers with room for --jobs.
const maxPooled = 6

// poolMin is the smallest buffer the pool keeps, in bytes: smaller ones
// come from the Go heap's size classes, which rarely fault, and would
// only take the large buffers' places. Tests lower it.
var poolMin int64 = 1 << 20

// poolHits counts the buffers handed out again, for tests.
var poolHits atomic.Int64

// pooledBuf is one free buffer: a []float32 or a []float64.
type pooledBuf struct {
	f32   []float32
	f64   []float64
	bytes int64
}

// getFloats returns a slice of n values for a tensor that will be read
// into it in full: a pooled one of exactly that length, or a new one.
func getFloats[T lowrank.Float](b *budget, n int) []T {
	if b != nil {
		b.mu.Lock()
		for i, p := range b.pool {
			var v any
			if _, is32 := any(T(0)).(float32); is32 && len(p.f32) == n && p.f32 != nil {
				v = p.f32
			} else if !is32 && len(p.f64) == n && p.f64 != nil {
				v = p.f64
			} else {
				continue
			}
			b.pool = append(b.pool[:i], b.pool[i+1:]...)
			b.pooled -= p.bytes
			b.mu.Unlock()
			poolHits.Add(1)
			return v.([]T)
		}
		b.mu.Unlock()
	}
	v := make([]T, n)
	hugePages(byteView(v)) // before the first touch
	return v
}

// putFloats gives v, no longer used, to the pool, which keeps it while
// the budget has room for it next to the tensors in flight.
func putFloats[T lowrank.Float](b *budget, v []T) {
	if b == nil || len(v) == 0 {
		return
	}
	p := pooledBuf{bytes: int64(len(v)) * elemSize[T]()}
	if p.bytes < poolMin {
		return
	}
	switch v := any(v).(type) {
	case []float32:
		p.f32 = v
	case []float64:
		p.f64 = v
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pool) == maxPooled {
		b.evictLocked()
	}
	for b.total > 0 && len(b.pool) > 0 && b.used+b.pooled+p.bytes > b.avail {
		b.evictLocked()
	}
	if b.total > 0 && b.used+b.pooled+p.bytes > b.avail {
		return // no room: dropped
	}
	b.pool = append(b.pool, p)
	b.pooled += p.bytes
}

// evictLocked drops the oldest pooled buffer; b.mu is held.
func (b *budget) evictLocked() {
	b.pooled -= b.pool[0].bytes
	b.pool[0] = pooledBuf{}
	b.pool = b.pool[1:]
}

// pooledBytes returns what the pool holds, in bytes.
func (b *budget) pooledBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pooled
}

func elemSize[T lowrank.Float]() int64 {
	if _, is32 := any(T(0)).(float32); is32 {
		return 4
	}
	return 8
}

// byteView is v's memory as bytes.
func byteView[T lowrank.Float](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0])))
}
