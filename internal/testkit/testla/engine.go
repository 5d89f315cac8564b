// Package testla is the engine-level conformance suite, in the manner of
// gonum's lapack/testlapack: EngineTest checks every primitive of an
// la.Engine (and la.Borrower, when the engine has it) against float64
// arithmetic on the host. It imports only la and the oracle, so a backend
// is tested here without the lowrank package; testlowrank runs the
// library's algorithms on top.
package testla

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank-go/lowrank/internal/testkit/oracle"
	"github.com/lowrank-go/lowrank/la"
)

// eps is the tolerance unit of a float type: about 10× its machine epsilon
// times the size of the problems here.
func eps[T float32 | float64]() float64 {
	var z T
	if _, ok := any(z).(float32); ok {
		return 1e-5
	}
	return 1e-12
}

func randSlice[T float32 | float64](n int, rng *rand.Rand) []T {
	v := make([]T, n)
	for i := range v {
		v[i] = T(rng.NormFloat64())
	}
	return v
}

func download[T float32 | float64](t *testing.T, e la.Engine[T], m la.Mat) []T {
	t.Helper()
	r, c := m.Dims()
	out := make([]T, r*c)
	if err := e.Download(out, m); err != nil {
		t.Fatalf("Download %d×%d: %v", r, c, err)
	}
	return out
}

func upload[T float32 | float64](t *testing.T, e la.Engine[T], r, c int, data []T) la.Mat {
	t.Helper()
	m, err := e.Upload(r, c, data)
	if err != nil {
		t.Fatalf("Upload %d×%d: %v", r, c, err)
	}
	t.Cleanup(func() { e.Free(m) })
	return m
}

// EngineTest checks every primitive of e against float64 arithmetic on the
// host.
func EngineTest[T float32 | float64](t *testing.T, e la.Engine[T]) {
	tol := eps[T]()
	rng := rand.New(rand.NewPCG(42, 1))

	t.Run("UploadDownloadView", func(t *testing.T) {
		const r, c = 7, 5
		data := randSlice[T](r*c, rng)
		m := upload(t, e, r, c, data)
		if got := download(t, e, m); oracle.RelDiff(got, data) != 0 {
			t.Fatalf("round trip changed the data")
		}
		v, err := e.View(m, 2, 6, 1, 4)
		if err != nil {
			t.Fatal(err)
		}
		if vr, vc := v.Dims(); vr != 4 || vc != 3 {
			t.Fatalf("view dims %d×%d, want 4×3", vr, vc)
		}
		got := download(t, e, v)
		for i := range 4 {
			for j := range 3 {
				if got[i*3+j] != data[(i+2)*c+j+1] {
					t.Fatalf("view[%d,%d] = %v, want %v", i, j, got[i*3+j], data[(i+2)*c+j+1])
				}
			}
		}
		// Copy into a view writes through to the parent, nowhere else.
		src := upload(t, e, 4, 3, make([]T, 12))
		if err := e.Copy(v, src); err != nil {
			t.Fatal(err)
		}
		all := download(t, e, m)
		for i := range r {
			for j := range c {
				inside := i >= 2 && i < 6 && j >= 1 && j < 4
				if inside && all[i*c+j] != 0 || !inside && all[i*c+j] != data[i*c+j] {
					t.Fatalf("after Copy into view, [%d,%d] = %v", i, j, all[i*c+j])
				}
			}
		}
		if _, err := e.View(m, 0, r+1, 0, c); err == nil {
			t.Errorf("View past the end returned no error")
		}
		z, err := e.Zeros(3, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Free(z) })
		for _, x := range download(t, e, z) {
			if x != 0 {
				t.Fatalf("Zeros has %v", x)
			}
		}
		e.Free(nil)
	})

	t.Run("Borrow", func(t *testing.T) {
		b, ok := e.(la.Borrower[T])
		if !ok {
			t.Skip("the engine does not implement la.Borrower")
		}
		const r, c = 6, 4
		data := randSlice[T](r*c, rng)
		orig := append([]T(nil), data...)
		m, err := b.Borrow(r, c, data)
		if err != nil {
			t.Fatal(err)
		}
		if mr, mc := m.Dims(); mr != r || mc != c {
			t.Fatalf("Borrow dims %d×%d, want %d×%d", mr, mc, r, c)
		}
		if got := download(t, e, m); oracle.RelDiff(got, orig) != 0 {
			t.Fatalf("a borrowed matrix reads differently from its data")
		}
		// Writes through the Mat (and a View of it) land in data.
		v, err := e.View(m, 1, 3, 0, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.ScaleRows(v, []T{2, 0}); err != nil {
			t.Fatal(err)
		}
		for i := range r {
			for j := range c {
				want := orig[i*c+j]
				switch i {
				case 1:
					want *= 2
				case 2:
					want = 0
				}
				if data[i*c+j] != want {
					t.Fatalf("after ScaleRows of a view, data[%d,%d] = %v, want %v", i, j, data[i*c+j], want)
				}
			}
		}
		e.Free(m)
		if data[0] != orig[0] {
			t.Fatalf("Free of a borrowed matrix changed its data")
		}
		if _, err := b.Borrow(r, c, data[:r*c-1]); err == nil {
			t.Errorf("Borrow of %d×%d from %d values returned no error", r, c, r*c-1)
		}
	})

	t.Run("Gemm", func(t *testing.T) {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				const m, n, k = 13, 9, 6
				ar, ac := m, k
				if tA {
					ar, ac = k, m
				}
				br, bc := k, n
				if tB {
					br, bc = n, k
				}
				a := randSlice[T](ar*ac, rng)
				b := randSlice[T](br*bc, rng)
				c0 := randSlice[T](m*n, rng)
				am, bm := upload(t, e, ar, ac, a), upload(t, e, br, bc, b)
				// c is a view inside a larger matrix, to test leading
				// dimensions.
				big := upload(t, e, m+2, n+3, randSlice[T]((m+2)*(n+3), rng))
				cm, err := e.View(big, 1, m+1, 2, n+2)
				if err != nil {
					t.Fatal(err)
				}
				if err := e.Copy(cm, upload(t, e, m, n, c0)); err != nil {
					t.Fatal(err)
				}
				const alpha, beta = 1.5, -0.5
				if err := e.Gemm(tA, tB, alpha, am, bm, beta, cm); err != nil {
					t.Fatalf("Gemm(%v,%v): %v", tA, tB, err)
				}
				opA, opB := oracle.ToF64(a), oracle.ToF64(b)
				if tA {
					opA = oracle.Transpose(ar, ac, opA)
				}
				if tB {
					opB = oracle.Transpose(br, bc, opB)
				}
				want := oracle.Matmul(m, k, n, opA, opB)
				for i := range want {
					want[i] = alpha*want[i] + beta*float64(c0[i])
				}
				if d := oracle.RelDiff(download(t, e, cm), want); d > tol {
					t.Errorf("Gemm(tA=%v, tB=%v): relative difference %.3g > %.3g", tA, tB, d, tol)
				}
				if err := e.Gemm(tA, tB, 1, am, bm, 0, upload(t, e, m+1, n, make([]T, (m+1)*n))); err == nil {
					t.Errorf("Gemm with a wrong output shape returned no error")
				}
			}
		}
	})

	t.Run("Orthonormalize", func(t *testing.T) {
		for _, sh := range [][2]int{{20, 5}, {8, 8}, {30, 1}} {
			m, n := sh[0], sh[1]
			a := randSlice[T](m*n, rng)
			am := upload(t, e, m, n, a)
			if err := e.Orthonormalize(am); err != nil {
				t.Fatal(err)
			}
			q := oracle.ToF64(download(t, e, am))
			oracle.CheckOrthonormalColumns(t, "Q", m, n, q, tol)
			// span: Q·Qᵀ·a = a.
			qta := oracle.Matmul(n, m, n, oracle.Transpose(m, n, q), oracle.ToF64(a))
			if d := oracle.RelDiff(oracle.Matmul(m, n, n, q, qta), oracle.ToF64(a)); d > tol {
				t.Errorf("%d×%d: Q does not span a: %.3g", m, n, d)
			}
		}
	})

	t.Run("SVD", func(t *testing.T) {
		for _, sh := range [][2]int{{12, 7}, {7, 12}, {9, 9}, {1, 1}, {1, 8}, {8, 1}} {
			m, n := sh[0], sh[1]
			a := randSlice[T](m*n, rng)
			am := upload(t, e, m, n, a)
			u, s, vt, err := e.SVD(am)
			if err != nil {
				t.Fatalf("%d×%d: %v", m, n, err)
			}
			t.Cleanup(func() { e.Free(u); e.Free(vt) })
			p := min(m, n)
			if ur, uc := u.Dims(); ur != m || uc != p {
				t.Fatalf("U is %d×%d, want %d×%d", ur, uc, m, p)
			}
			if vr, vc := vt.Dims(); vr != p || vc != n {
				t.Fatalf("Vt is %d×%d, want %d×%d", vr, vc, p, n)
			}
			if len(s) != p {
				t.Fatalf("%d singular values, want %d", len(s), p)
			}
			for i := 1; i < p; i++ {
				if s[i] > s[i-1] || s[i] < 0 {
					t.Fatalf("singular values not decreasing and ≥ 0: %v", s)
				}
			}
			want := oracle.SVD(m, n, oracle.ToF64(a))
			if d := oracle.RelDiff(s, want); d > tol {
				t.Errorf("%d×%d: singular values differ from the oracle by %.3g", m, n, d)
			}
			uh, vth := oracle.ToF64(download(t, e, u)), oracle.ToF64(download(t, e, vt))
			oracle.CheckOrthonormalColumns(t, "U", m, p, uh, tol)
			oracle.CheckOrthonormalColumns(t, "V", n, p, oracle.Transpose(p, n, vth), tol)
			us := append([]float64(nil), uh...)
			for i := range m {
				for j := range p {
					us[i*p+j] *= s[j]
				}
			}
			if d := oracle.RelDiff(oracle.Matmul(m, p, n, us, vth), oracle.ToF64(a)); d > tol {
				t.Errorf("%d×%d: U·S·Vt differs from a by %.3g", m, n, d)
			}
		}
	})

	t.Run("ScaleAndSumSquares", func(t *testing.T) {
		const m, n = 6, 4
		a := randSlice[T](m*n, rng)
		am := upload(t, e, m, n, a)
		v, _ := e.View(am, 1, 5, 1, 3) // 4×2
		if err := e.ScaleColumns(v, []T{2, -3}); err != nil {
			t.Fatal(err)
		}
		if err := e.ScaleRows(v, []T{1, 0.5, 4, -1}); err != nil {
			t.Fatal(err)
		}
		got := download(t, e, am)
		for i := range m {
			for j := range n {
				w := float64(a[i*n+j])
				if i >= 1 && i < 5 && j >= 1 && j < 3 {
					w *= []float64{2, -3}[j-1] * []float64{1, 0.5, 4, -1}[i-1]
				}
				if math.Abs(float64(got[i*n+j])-w) > tol*(1+math.Abs(w)) {
					t.Fatalf("scaled [%d,%d] = %v, want %v", i, j, got[i*n+j], w)
				}
			}
		}
		if err := e.ScaleColumns(v, []T{1}); err == nil {
			t.Errorf("ScaleColumns with a wrong length returned no error")
		}
		// Sums of squares of huge and tiny values must not overflow or
		// underflow, even in float32.
		for _, scale := range []float64{1e30, 1e-30, 1} {
			vals := make([]T, 10)
			want := 0.0
			for i := range vals {
				vals[i] = T(scale * float64(i+1))
				x := float64(vals[i]) / scale
				want += x * x
			}
			hm := upload(t, e, 2, 5, vals)
			ss, err := e.SumSquares(hm)
			if err != nil {
				t.Fatal(err)
			}
			if got := ss / scale / scale; math.Abs(got-want) > 1e-5*want || math.IsInf(ss, 0) || math.IsNaN(ss) {
				t.Errorf("SumSquares at scale %g = %g, want %g", scale, ss, want*scale*scale)
			}
		}
	})

	t.Run("Applier", func(t *testing.T) {
		const d, r, k = 11, 3, 8
		b, a := randSlice[T](d*r, rng), randSlice[T](r*k, rng)
		app, err := e.NewApplier(d, r, k, b, a)
		if err != nil {
			t.Fatal(err)
		}
		defer app.Close()
		w := oracle.Matmul(d, r, k, oracle.ToF64(b), oracle.ToF64(a))
		for _, n := range []int{1, 2, 5, 64} {
			for _, withBias := range []bool{false, true} {
				x := randSlice[T](n*k, rng)
				var bias []T
				if withBias {
					bias = randSlice[T](d, rng)
				}
				y := make([]T, n*d)
				if err := app.Apply(y, x, n, bias); err != nil {
					t.Fatal(err)
				}
				want := oracle.Matmul(n, k, d, oracle.ToF64(x), oracle.Transpose(d, k, w))
				for i := range n {
					for j := range d {
						if bias != nil {
							want[i*d+j] += float64(bias[j])
						}
					}
				}
				if diff := oracle.RelDiff(y, want); diff > tol {
					t.Errorf("Apply n=%d bias=%v: relative difference %.3g", n, withBias, diff)
				}
			}
		}
		if err := app.Apply(make([]T, d), make([]T, k+1), 1, nil); err == nil {
			t.Errorf("Apply with a wrong input length returned no error")
		}
	})
}
