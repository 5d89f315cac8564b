package lowrank

import (
	"runtime/debug"
	"testing"
	"unsafe"
)

// The host pool hands a buffer back for the same length and element type
// only, cleared when asked; buffers under hostMin are not kept.
func TestHostPool(t *testing.T) {
	if raceEnabled {
		t.Skip("with -race, sync.Pool drops what it is given at random")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no collection empties the pools meanwhile
	n := hostMin/4 + 3
	a := getHost[float32](n, true)
	for i := range a {
		a[i] = 7
	}
	putHost(a)
	if b := getHost[float64](n, true); unsafe.Pointer(unsafe.SliceData(b)) == unsafe.Pointer(unsafe.SliceData(a)) {
		t.Fatal("a float32 buffer handed out as float64")
	}
	if b := getHost[float32](n+1, true); unsafe.SliceData(b) == unsafe.SliceData(a) {
		t.Fatal("a buffer handed out for another length")
	}
	b := getHost[float32](n, true)
	if unsafe.SliceData(b) != unsafe.SliceData(a) || len(b) != n {
		t.Fatal("the pooled buffer was not reused")
	}
	for i, v := range b {
		if v != 0 {
			t.Fatalf("reused buffer not cleared: element %d = %v", i, v)
		}
	}
	for i := range b {
		b[i] = 7
	}
	putHost(b)
	if c := getHost[float32](n, false); unsafe.SliceData(c) != unsafe.SliceData(a) || c[n-1] != 7 {
		t.Fatal("a buffer asked for without clearing was cleared or not reused")
	}
	small := make([]float32, 100)
	putHost(small)
	if c := getHost[float32](100, false); unsafe.SliceData(c) == unsafe.SliceData(small) {
		t.Fatal("a small buffer was pooled")
	}
}
