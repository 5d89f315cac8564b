// Package gemm32 is a float32 matrix product for the pure-Go CPU path
// (no system BLAS, or CGO_ENABLED=0): a 6×16 AVX2/FMA micro-kernel in Go
// assembly inside a cache-blocked loop nest, split over goroutines. On
// the project's 2-core Xeon it runs the randomized method's products
// several times faster than gonum's Sgemm, which is SSE-based.
//
// Matrices are row-major with a row stride, as in cpu's kernels.
// Available reports whether the kernel can run on this CPU; callers use
// gonum otherwise.
package gemm32

import "sync"

// Block sizes: kc rows of op(B) (a kc×16 panel of B is 16 KiB, L1) and
// nc columns (a kc×nc block of B is 256 KiB, L2).
const (
	mr = 6
	nr = 16
	kc = 256
	nc = 256
)

// minFlops is the smallest product (m·n·k) worth the kernel's set-up;
// below it gonum's loops are as fast.
const minFlops = 1 << 15

// Available reports whether the assembly kernel runs on this CPU.
func Available() bool { return hasKernel }

// Worth reports whether Sgemm should be used for an m×n×k product.
func Worth(m, n, k int) bool {
	return hasKernel && m >= 1 && n >= 1 && k >= 1 && m*n*k >= minFlops
}

// Sgemm computes c = alpha·op(a)·op(b) + beta·c, op(a) m×k, op(b) k×n,
// all row-major with strides lda, ldb, ldc, on at most workers goroutines
// (the calling one included; fewer for a small product). It must only be
// called when Available reports true and m, n, k ≥ 1.
func Sgemm(workers int, tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if beta != 1 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
			} else {
				for j := range row {
					row[j] *= beta
				}
			}
		}
	}
	if alpha == 0 {
		return
	}
	p := &problem{tA: tA, tB: tB, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc}
	workers = min(workers, max(1, m*n*k/(1<<21)))
	if workers <= 1 {
		p.run(0, m, 0, n)
		return
	}
	// Split the rows when there are enough of them, otherwise the columns
	// (in whole 16-column panels), so that each worker runs the blocked
	// product on its own part of C with no synchronisation.
	var wg sync.WaitGroup
	if m >= mr*2*workers || n < nr*2*workers {
		blocks := (m + mr - 1) / mr
		for w := range workers {
			i0, i1 := w*blocks/workers*mr, min(m, (w+1)*blocks/workers*mr)
			if i0 >= i1 {
				continue
			}
			if w == workers-1 {
				p.run(i0, i1, 0, n) // the last part on the calling goroutine
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.run(i0, i1, 0, n) }()
		}
	} else {
		panels := (n + nr - 1) / nr
		for w := range workers {
			j0, j1 := w*panels/workers*nr, min(n, (w+1)*panels/workers*nr)
			if j0 >= j1 {
				continue
			}
			if w == workers-1 {
				p.run(0, m, j0, j1)
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.run(0, m, j0, j1) }()
		}
	}
	wg.Wait()
}

type problem struct {
	tA, tB bool
	k      int
	alpha  float32
	a      []float32
	lda    int
	b      []float32
	ldb    int
	c      []float32
	ldc    int
}

// bufs are one worker's packing buffers.
type bufs struct {
	a   [mr * kc]float32 // an edge block of A, p-major: a[p·mr + r]
	b   []float32        // packed panels of B, kc×16 each
	tmp [mr * nr]float32 // an edge tile of C
}

var pool = sync.Pool{New: func() any { return &bufs{b: make([]float32, kc*(nc+nr))} }}

// run computes rows [i0, i1) and columns [j0, j1) of C.
func (p *problem) run(i0, i1, j0, j1 int) {
	bf := pool.Get().(*bufs)
	defer pool.Put(bf)
	const f = 4 // bytes per float32
	for jc := j0; jc < j1; jc += nc {
		jn := min(jc+nc, j1)
		for pc := 0; pc < p.k; pc += kc {
			kb := min(kc, p.k-pc)
			// B: pack each 16-column panel of this kc×nc block (zero
			// padded at the edge) so that the kernel streams it.
			type panel struct {
				ptr *float32
				ld  int // bytes between rows
			}
			var pans [nc/nr + 1]panel
			np := 0
			for jr := jc; jr < jn; jr += nr {
				w := min(nr, jn-jr)
				dst := bf.b[np*kc*nr : np*kc*nr+kb*nr]
				if p.tB {
					for j := range w {
						src := p.b[(jr+j)*p.ldb+pc : (jr+j)*p.ldb+pc+kb]
						for q, v := range src {
							dst[q*nr+j] = v
						}
					}
					if w < nr {
						for q := range kb {
							clear(dst[q*nr+w : q*nr+nr])
						}
					}
				} else {
					for q := range kb {
						row := dst[q*nr : q*nr+nr]
						copy(row, p.b[(pc+q)*p.ldb+jr:(pc+q)*p.ldb+jr+w])
						clear(row[w:])
					}
				}
				pans[np] = panel{&dst[0], nr * f}
				np++
			}
			for ir := i0; ir < i1; ir += mr {
				h := min(mr, i1-ir)
				// A: (r, p) of op(A) is a[(ir+r)·lda + pc+p] or, transposed,
				// a[(pc+p)·lda + ir+r]; packed p-major (zero rows past the
				// edge) so that the kernel streams it from L1.
				pa := bf.a[:kb*mr]
				if p.tA {
					for q := range kb {
						src := p.a[(pc+q)*p.lda+ir : (pc+q)*p.lda+ir+h]
						dst := pa[q*mr : q*mr+mr]
						copy(dst, src)
						clear(dst[h:])
					}
				} else {
					for r := range h {
						src := p.a[(ir+r)*p.lda+pc : (ir+r)*p.lda+pc+kb]
						for q, v := range src {
							pa[q*mr+r] = v
						}
					}
					for r := h; r < mr; r++ {
						for q := range kb {
							pa[q*mr+r] = 0
						}
					}
				}
				ap, rs, ps := &pa[0], f, mr*f
				for q := range np {
					jr := jc + q*nr
					w := min(nr, jn-jr)
					if h == mr && w == nr {
						kernel6x16(kb, ap, rs, ps, pans[q].ptr, pans[q].ld, &p.c[ir*p.ldc+jr], p.ldc*f, p.alpha)
						continue
					}
					clear(bf.tmp[:])
					kernel6x16(kb, ap, rs, ps, pans[q].ptr, pans[q].ld, &bf.tmp[0], nr*f, p.alpha)
					for r := range h {
						row := p.c[(ir+r)*p.ldc+jr : (ir+r)*p.ldc+jr+w]
						for j := range row {
							row[j] += bf.tmp[r*nr+j]
						}
					}
				}
			}
		}
	}
}
