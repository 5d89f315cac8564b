package cpu

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/la"
)

// backends returns the gonum backend and, when a system BLAS/LAPACK loads,
// the system one, so that every test runs on both kernels.
func testBackends(t *testing.T) map[string]*Backend {
	t.Helper()
	out := map[string]*Backend{"gonum": NewGonum()}
	if b := New(); b.system() {
		out["system"] = b
	} else {
		t.Logf("system BLAS not tested: %v", b.Describe())
	}
	return out
}

func randMat[T la.Float](rng *rand.Rand, rows, cols int) []T {
	d := make([]T, rows*cols)
	for i := range d {
		d[i] = T(rng.NormFloat64())
	}
	return d
}

func tol[T la.Float]() float64 {
	var z T
	if _, ok := any(z).(float32); ok {
		return 2e-4
	}
	return 1e-11
}

func TestDescribe(t *testing.T) {
	for name, b := range testBackends(t) {
		d := b.Describe()
		if len(d) == 0 {
			t.Errorf("%s: empty Describe", name)
		}
		t.Logf("%s: %q", name, d)
		if s := strings.Join(d, "\n"); strings.Contains(s, "lowrank:") {
			t.Errorf("%s: Describe quotes a prefixed error: %q", name, s)
		}
		if err := b.Init(); err != nil {
			t.Errorf("%s: Init: %v", name, err)
		}
	}
}

func TestKernels(t *testing.T) {
	bs := testBackends(t)
	t.Run("float64", func(t *testing.T) { testKernels(t, bs, func(b *Backend) la.Engine[float64] { return b.Float64() }) })
	t.Run("float32", func(t *testing.T) { testKernels(t, bs, func(b *Backend) la.Engine[float32] { return b.Float32() }) })
}

func testKernels[T la.Float](t *testing.T, bs map[string]*Backend, eng func(*Backend) la.Engine[T]) {
	tl := tol[T]()
	rng := rand.New(rand.NewPCG(7, 8))
	shapes := [][2]int{{1, 1}, {9, 4}, {4, 9}, {17, 17}, {60, 13}, {13, 60}}
	type result struct {
		gemm [4][]T
		q    []T // Q·Qᵀ, which does not depend on signs
		s    []float64
		y1   []T
		yn   []T
	}
	for _, sh := range shapes {
		m, n := sh[0], sh[1]
		a := randMat[T](rng, m, n)
		b := randMat[T](rng, m, n)
		x := randMat[T](rng, 3, n)
		bias := randMat[T](rng, 1, m)
		results := map[string]result{}
		for name, be := range bs {
			e := eng(be)
			var res result
			// Gemm in all four transpositions: Aᵀ·B, A·Bᵀ, … with a view
			// of a larger matrix to test strides.
			for c, tr := range [][2]bool{{false, true}, {true, false}, {false, false}, {true, true}} {
				am, _ := e.Upload(m, n, a)
				bm, _ := e.Upload(m, n, b)
				var opA, opB la.Mat = am, bm
				rows, cols := m, m
				if tr[0] {
					rows = n
				}
				if !tr[1] {
					cols = n
				}
				inner := n
				if tr[0] {
					inner = m
				}
				if !tr[0] && !tr[1] || tr[0] && tr[1] {
					// op(A)·op(B) needs matching inner dimensions: use a
					// square view of both.
					p := min(m, n)
					opA, _ = e.View(am, 0, p, 0, p)
					opB, _ = e.View(bm, 0, p, 0, p)
					rows, cols, inner = p, p, p
				}
				_ = inner
				big, _ := e.Zeros(rows+2, cols+3)
				cm, _ := e.View(big, 1, rows+1, 2, cols+2)
				if err := e.Gemm(tr[0], tr[1], 2, opA, opB, 0, cm); err != nil {
					t.Fatalf("%s %d×%d gemm %v: %v", name, m, n, tr, err)
				}
				out := make([]T, rows*cols)
				if err := e.Download(out, cm); err != nil {
					t.Fatal(err)
				}
				res.gemm[c] = out
			}
			// Orthonormalize the tall orientation.
			tm, tn := max(m, n), min(m, n)
			qm, _ := e.Upload(tm, tn, a)
			if err := e.Orthonormalize(qm); err != nil {
				t.Fatalf("%s: orthonormalize: %v", name, err)
			}
			q := make([]T, tm*tn)
			e.Download(q, qm)
			checkOrthonormal(t, name, q, tm, tn, tl)
			res.q = outer(q, tm, tn)
			// SVD: reconstruction, orthonormality and the spectrum.
			sm, _ := e.Upload(m, n, a)
			um, s, vtm, err := e.SVD(sm)
			if err != nil {
				t.Fatalf("%s: svd: %v", name, err)
			}
			p := min(m, n)
			u := make([]T, m*p)
			vt := make([]T, p*n)
			e.Download(u, um)
			e.Download(vt, vtm)
			checkOrthonormal(t, name+" U", u, m, p, tl)
			checkOrthonormal(t, name+" V", transpose(vt, p, n), n, p, tl)
			var norm float64
			for _, v := range a {
				norm += float64(v) * float64(v)
			}
			for i := range m {
				for j := range n {
					var r float64
					for k := range p {
						r += float64(u[i*p+k]) * s[k] * float64(vt[k*n+j])
					}
					if math.Abs(r-float64(a[i*n+j])) > tl*10*math.Sqrt(norm) {
						t.Fatalf("%s %d×%d: U·S·Vᵀ[%d,%d] = %v, want %v", name, m, n, i, j, r, a[i*n+j])
					}
				}
			}
			res.s = s
			// Apply one vector and a batch, with W = A viewed as d×k = m×n
			// factored as B = I-ish (m×r) · A (r×n): use r = min(m,n).
			bf := append([]T(nil), u...)
			af := make([]T, p*n)
			for k := range p {
				for j := range n {
					af[k*n+j] = T(s[k]) * vt[k*n+j]
				}
			}
			ap, err := e.NewApplier(m, p, n, bf, af)
			if err != nil {
				t.Fatal(err)
			}
			res.y1 = make([]T, m)
			if err := ap.Apply(res.y1, x[:n], 1, bias); err != nil {
				t.Fatal(err)
			}
			res.yn = make([]T, 3*m)
			if err := ap.Apply(res.yn, x, 3, nil); err != nil {
				t.Fatal(err)
			}
			for i := range m {
				var want float64 = float64(bias[i])
				for j := range n {
					want += float64(a[i*n+j]) * float64(x[j])
				}
				if math.Abs(float64(res.y1[i])-want) > tl*100*(1+math.Abs(want)) {
					t.Fatalf("%s %d×%d: apply y[%d] = %v, want %v", name, m, n, i, res.y1[i], want)
				}
			}
			results[name] = res
		}
		// Cross-check the kernels against each other.
		g, ok := results["gonum"]
		sys, ok2 := results["system"]
		if !ok || !ok2 {
			continue
		}
		for c := range g.gemm {
			closeTo(t, "gemm", g.gemm[c], sys.gemm[c], tl*10)
		}
		closeTo(t, "QQᵀ", g.q, sys.q, tl*10)
		closeTo(t, "apply", g.y1, sys.y1, tl*100)
		closeTo(t, "apply batch", g.yn, sys.yn, tl*100)
		for i := range g.s {
			if math.Abs(g.s[i]-sys.s[i]) > tl*10*(1+g.s[0]) {
				t.Fatalf("%d×%d: σ%d gonum %v, system %v", m, n, i, g.s[i], sys.s[i])
			}
		}
	}
}

func closeTo[T la.Float](t *testing.T, what string, a, b []T, tl float64) {
	t.Helper()
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tl*(1+math.Abs(float64(a[i]))) {
			t.Fatalf("%s[%d]: gonum %v, system %v", what, i, a[i], b[i])
		}
	}
}

func checkOrthonormal[T la.Float](t *testing.T, name string, q []T, m, n int, tl float64) {
	t.Helper()
	for c1 := range n {
		for c2 := range n {
			var d float64
			for i := range m {
				d += float64(q[i*n+c1]) * float64(q[i*n+c2])
			}
			want := 0.0
			if c1 == c2 {
				want = 1
			}
			if math.Abs(d-want) > tl*10 {
				t.Fatalf("%s: columns %d·%d = %v, want %v", name, c1, c2, d, want)
			}
		}
	}
}

// outer returns Q·Qᵀ of the m×n row-major q.
func outer[T la.Float](q []T, m, n int) []T {
	o := make([]T, m*m)
	for i := range m {
		for j := range m {
			var d float64
			for k := range n {
				d += float64(q[i*n+k]) * float64(q[j*n+k])
			}
			o[i*m+j] = T(d)
		}
	}
	return o
}

func transpose[T la.Float](a []T, m, n int) []T {
	t := make([]T, m*n)
	for i := range m {
		for j := range n {
			t[j*m+i] = a[i*n+j]
		}
	}
	return t
}
