package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/lowrank-go/lowrank/safetensors"
)

// TestPooledBuffersLeakNothing factorizes a model whose tensors reuse each
// other's buffers (the same number of elements in another shape, a
// smaller tensor after a larger one, F16, BF16 and F64 inputs, tensors
// kept dense and rounded in place to --dtype) and checks that every output
// tensor is byte for byte what factorizing that tensor alone gives.
func TestPooledBuffersLeakNothing(t *testing.T) {
	defer func(m int64) { poolMin = m }(poolMin)
	poolMin = 0 // pool these small tensors too
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	ts := []tensor{
		{name: "a.weight", dt: safetensors.F32, shape: []int{48, 40}, vals: decaying(rng, 48, 40)},
		{name: "b.weight", dt: safetensors.F32, shape: []int{40, 48}, vals: decaying(rng, 40, 48)},
		{name: "c.weight", dt: safetensors.F16, shape: []int{24, 20}, vals: decaying(rng, 24, 20)},
		{name: "d.weight", dt: safetensors.BF16, shape: []int{48, 40}, vals: decaying(rng, 48, 40)},
		{name: "e.weight", dt: safetensors.F32, shape: []int{6, 8}, vals: gauss(rng, 48, 1)}, // rank 8 > 6: kept dense
		{name: "f.weight", dt: safetensors.F32, shape: []int{40, 48}, vals: gauss(rng, 40*48, 1)},
		{name: "g.weight", dt: safetensors.F64, shape: []int{48, 40}, vals: decaying(rng, 48, 40)},
		{name: "h.weight", dt: safetensors.F64, shape: []int{40, 48}, vals: decaying(rng, 40, 48)},
		{name: "i.weight", dt: safetensors.F32, shape: []int{6, 8}, vals: gauss(rng, 48, 3)},
	}
	in := filepath.Join(dir, "m.safetensors")
	writeST(t, in, nil, ts...)
	for _, extra := range [][]string{
		{"--jobs", "1"},
		{"--jobs", "2"},
		{"--jobs", "1", "--dtype", "bf16", "--method", "randomized"},
		{"--jobs", "1", "--max-memory", "40MiB"},
	} {
		out := filepath.Join(dir, "out.safetensors")
		hits := poolHits.Load()
		mustCLI(t, append([]string{"factorize", in, "-o", out, "--rank", "8", "--quiet", "--force"}, extra...)...)
		if poolHits.Load() == hits {
			t.Errorf("%v: no buffer was reused; the test checks nothing", extra)
		}
		whole := rawTensors(t, out)
		for _, x := range ts {
			one := filepath.Join(dir, "one.safetensors")
			writeST(t, one, nil, x)
			alone := filepath.Join(dir, "alone.safetensors")
			mustCLI(t, append([]string{"factorize", one, "-o", alone, "--rank", "8", "--quiet", "--force"}, extra...)...)
			n := 0
			for name, b := range rawTensors(t, alone) {
				n++
				if !bytes.Equal(whole[name], b) {
					t.Errorf("%v: %s differs between the whole model and the tensor alone", extra, name)
				}
			}
			if n == 0 {
				t.Fatalf("%v: nothing written for %s", extra, x.name)
			}
		}
	}
}

// rawTensors returns every tensor of path as its raw bytes.
func rawTensors(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]byte{}
	for _, ti := range f.Tensors() {
		b, err := f.ReadRaw(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		m[ti.Name] = b
	}
	return m
}

// TestPoolWithinBudget checks the pool's accounting: what it holds counts
// against the budget, it keeps nothing that does not fit, a tensor that
// needs the room takes it back, and a buffer is handed out again only for
// exactly its length and type.
func TestPoolWithinBudget(t *testing.T) {
	defer func(m int64) { poolMin = m }(poolMin)
	poolMin = 0
	b, err := newBudget(reserveBytes + 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer b.restore()
	putFloats(b, make([]float32, 100)) // 400 bytes
	putFloats(b, make([]float64, 50))  // 400 bytes
	if got := b.pooledBytes(); got != 800 {
		t.Fatalf("pooled %d bytes; want 800", got)
	}
	putFloats(b, make([]float32, 100)) // 400 more do not fit: the oldest goes
	if got := b.pooledBytes(); got != 800 {
		t.Fatalf("pooled %d bytes after a third buffer; want 800 (within the 1000 left)", got)
	}
	if v := getFloats[float32](b, 99); len(v) != 99 || b.pooledBytes() != 800 {
		t.Errorf("a buffer of another length was handed out: %d values, %d bytes left", len(v), b.pooledBytes())
	}
	if v := getFloats[float64](b, 100); len(v) != 100 || b.pooledBytes() != 800 {
		t.Errorf("a float32 buffer was handed out as float64: %d bytes left", b.pooledBytes())
	}
	hits := poolHits.Load()
	if v := getFloats[float32](b, 100); len(v) != 100 || poolHits.Load() != hits+1 || b.pooledBytes() != 400 {
		t.Errorf("the pooled float32 buffer was not reused: %d bytes left", b.pooledBytes())
	}
	// A tensor needing 900 bytes takes the 400 the pool holds.
	if err := b.acquire(context.Background(), 900); err != nil {
		t.Fatal(err)
	}
	if got := b.pooledBytes(); got != 0 {
		t.Errorf("pool holds %d bytes next to a tensor that needed them", got)
	}
	putFloats(b, make([]float32, 100)) // 400 bytes: no room while 900 are in use
	if got := b.pooledBytes(); got != 0 {
		t.Errorf("pool kept %d bytes beyond the budget", got)
	}
	b.release(900)
	// Without a budget, the pool keeps at most maxPooled buffers.
	nb := &budget{changed: make(chan struct{}), restore: func() {}}
	for range maxPooled + 3 {
		putFloats(nb, make([]float32, 10))
	}
	if len(nb.pool) != maxPooled {
		t.Errorf("pool holds %d buffers without a budget; want %d", len(nb.pool), maxPooled)
	}
	poolMin = 1 << 20
	putFloats(nb, make([]float32, 1<<18-1)) // just under 1 MiB: not kept
	if len(nb.pool) != maxPooled || nb.pool[maxPooled-1].bytes != 40 {
		t.Errorf("a buffer under poolMin was kept")
	}
}

// TestFreshLargeBuffer checks a fresh buffer large enough for huge pages:
// the advice leaves it zeroed, of the length asked, and writable.
func TestFreshLargeBuffer(t *testing.T) {
	n := hugePageMin/4 + 1000
	v := getFloats[float32](nil, n)
	if len(v) != n || len(byteView(v)) != 4*n {
		t.Fatalf("%d values, %d bytes; want %d, %d", len(v), len(byteView(v)), n, 4*n)
	}
	for i := range v {
		if v[i] != 0 {
			t.Fatalf("v[%d] = %v in a fresh buffer", i, v[i])
		}
		v[i] = float32(i)
	}
	if v[n-1] != float32(n-1) || byteView([]float64(nil)) != nil {
		t.Error("buffer not writable, or a view of nothing is not nil")
	}
}
