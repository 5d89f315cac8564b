//go:build cgo && (linux || freebsd)

package blas

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// requireLib skips when no system BLAS/LAPACK is installed, with the reason.
func requireLib(t *testing.T) *Lib {
	t.Helper()
	l, err := Load()
	if err != nil {
		t.Skipf("no system BLAS: %v", err)
	}
	return l
}

func TestLoadMissing(t *testing.T) {
	_, err := load("/nonexistent/libnothing.so")
	var le *LoadError
	if !errors.As(err, &le) || len(le.Tried) != 1 {
		t.Fatalf("got %v, want a LoadError", err)
	}
	t.Log(err)
}

func TestDescribe(t *testing.T) {
	l := requireLib(t)
	t.Logf("%s %q paths=%v threads=%d", l.Vendor, l.Version, l.Paths, l.Threads)
	if len(l.Paths) == 0 {
		t.Error("no library path found")
	}
}

func TestGemm(t *testing.T) {
	l := requireLib(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ tA, tB bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		m, n, k := 7, 5, 9
		a := make([]float64, (m+3)*(k+3)) // room for lda = k+3 or m+3
		b := make([]float64, (k+3)*(n+3))
		for i := range a {
			a[i] = rng.NormFloat64()
		}
		for i := range b {
			b[i] = rng.NormFloat64()
		}
		lda, ldb := k+3, n+2
		if tc.tA {
			lda = m + 3
		}
		if tc.tB {
			ldb = k + 2
		}
		at := func(i, p int) float64 {
			if tc.tA {
				return a[p*lda+i]
			}
			return a[i*lda+p]
		}
		bt := func(p, j int) float64 {
			if tc.tB {
				return b[j*ldb+p]
			}
			return b[p*ldb+j]
		}
		c := make([]float64, m*n)
		l.Dgemm(tc.tA, tc.tB, m, n, k, 2, a, lda, b, ldb, 0, c, n)
		c32 := make([]float32, m*n)
		a32, b32 := narrow(a), narrow(b)
		l.Sgemm(tc.tA, tc.tB, m, n, k, 2, a32, lda, b32, ldb, 0, c32, n)
		for i := range m {
			for j := range n {
				var want float64
				for p := range k {
					want += 2 * at(i, p) * bt(p, j)
				}
				if math.Abs(c[i*n+j]-want) > 1e-12*10 || math.Abs(float64(c32[i*n+j])-want) > 1e-4 {
					t.Fatalf("%+v: c[%d,%d] = %v / %v, want %v", tc, i, j, c[i*n+j], c32[i*n+j], want)
				}
			}
		}
	}
}

func narrow(v []float64) []float32 {
	w := make([]float32, len(v))
	for i, x := range v {
		w[i] = float32(x)
	}
	return w
}

func TestGesdd(t *testing.T) {
	l := requireLib(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sh := range [][2]int{{6, 4}, {4, 6}, {5, 5}} {
		m, n := sh[0], sh[1]
		p := min(m, n)
		a := make([]float32, m*n)
		for i := range a {
			a[i] = float32(rng.NormFloat64())
		}
		w := append([]float32(nil), a...)
		s := make([]float32, p)
		u := make([]float32, m*p)
		vt := make([]float32, p*n)
		if err := Gesdd(l, m, n, w, m, s, u, m, vt, p); err != nil {
			t.Fatal(err)
		}
		for i := range m {
			for j := range n {
				var r float64
				for q := range p {
					r += float64(u[q*m+i]) * float64(s[q]) * float64(vt[j*p+q])
				}
				if math.Abs(r-float64(a[j*m+i])) > 1e-4 {
					t.Fatalf("%d×%d: reconstruction (%d,%d) = %v, want %v", m, n, i, j, r, a[j*m+i])
				}
			}
		}
		for q := 1; q < p; q++ {
			if s[q] > s[q-1] {
				t.Fatalf("singular values not decreasing: %v", s)
			}
		}
	}
	// Bad arguments are caught before LAPACK sees them.
	err := Gesdd(l, 4, 4, make([]float64, 16), 2, make([]float64, 4), make([]float64, 16), 4, make([]float64, 16), 4)
	var le *Error
	if !errors.As(err, &le) || le.Routine != "dgesdd_" || le.Info != -5 {
		t.Fatalf("lda too small: got %v", err)
	}
}

func TestOrth(t *testing.T) {
	l := requireLib(t)
	rng := rand.New(rand.NewPCG(5, 6))
	m, n := 50, 7
	a := make([]float64, m*n)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	orig := append([]float64(nil), a...)
	// Column-major m×n: QR. The same memory as a row-major n×m: LQ of
	// the column-major n×m matrix with lda = n.
	q := append([]float64(nil), a...)
	if err := OrthQR(l, m, n, q, m); err != nil {
		t.Fatal(err)
	}
	checkOrth(t, "QR", n, func(i, c int) float64 { return q[c*m+i] }, m)
	checkInSpan(t, "QR", m, n, q, orig)
	lq := narrow(orig) // column-major n×m (rows are the m-vectors)… use as row-major m×n
	if err := OrthLQ(l, n, m, lq, n); err != nil {
		t.Fatal(err)
	}
	checkOrth(t, "LQ", n, func(i, c int) float64 { return float64(lq[i*n+c]) }, m)
	if err := OrthQR(l, 3, 5, make([]float32, 15), 3); err == nil {
		t.Error("QR of a wide matrix: no error")
	}
}

// checkInSpan checks that every column of the column-major m×n a lies in
// the span of the orthonormal columns of q: ‖a − QQᵀa‖ ≈ 0.
func checkInSpan(t *testing.T, name string, m, n int, q, a []float64) {
	t.Helper()
	for c := range n {
		res := append([]float64(nil), a[c*m:(c+1)*m]...)
		for j := range n {
			var d float64
			for i := range m {
				d += q[j*m+i] * a[c*m+i]
			}
			for i := range m {
				res[i] -= d * q[j*m+i]
			}
		}
		for _, v := range res {
			if math.Abs(v) > 1e-10 {
				t.Fatalf("%s: column %d not in the span: residual %v", name, c, v)
			}
		}
	}
}

// checkOrth checks that the n columns (of length m) given by at are
// orthonormal.
func checkOrth(t *testing.T, name string, n int, at func(i, c int) float64, m int) {
	t.Helper()
	for c1 := range n {
		for c2 := range n {
			var d float64
			for i := range m {
				d += at(i, c1) * at(i, c2)
			}
			want := 0.0
			if c1 == c2 {
				want = 1
			}
			if math.Abs(d-want) > 1e-5 {
				t.Fatalf("%s: column %d·column %d = %v, want %v", name, c1, c2, d, want)
			}
		}
	}
}

// TestSetThreads: the thread control found in the library changes the
// count the library reports, and is put back afterwards.
func TestSetThreads(t *testing.T) {
	l := requireLib(t)
	if l.ThreadControl == "" {
		if l.SetThreads(1) {
			t.Error("SetThreads succeeded without a thread control")
		}
		t.Skipf("%s has no thread control", l.Vendor)
	}
	before := l.CurrentThreads()
	t.Logf("%s: %s, %d threads at load, %d now", l.Vendor, l.ThreadControl, l.Threads, before)
	defer l.SetThreads(max(before, 1))
	if !l.SetThreads(1) {
		t.Fatal("SetThreads(1) failed")
	}
	if got := l.CurrentThreads(); got != 1 {
		t.Errorf("after SetThreads(1) the library reports %d threads", got)
	}
	if l.Threads > 1 {
		l.SetThreads(2)
		if got := l.CurrentThreads(); got != 2 {
			t.Errorf("after SetThreads(2) the library reports %d threads", got)
		}
	}
	if l.SetThreads(0) {
		t.Error("SetThreads(0) succeeded")
	}
}

// TestLUBasis: P·L from ?getrf has one unit entry per column in a
// distinct pivot row, zeros above it in pivot order, entries of magnitude
// ≤ 1, and the column span of a — also for a rank-deficient and a zero a,
// where it keeps full rank.
func TestLUBasis(t *testing.T) {
	l := requireLib(t)
	if !HasLU[float64](l) || !HasLU[float32](l) {
		t.Skipf("%s has no ?getrf", l.Vendor)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	m, n := 60, 9
	full := make([]float64, m*n)
	for i := range full {
		full[i] = rng.NormFloat64()
	}
	deficient := make([]float64, m*n) // rank 3: columns 3.. repeat 0..2
	for c := range n {
		copy(deficient[c*m:(c+1)*m], full[(c%3)*m:(c%3+1)*m])
	}
	for name, a := range map[string][]float64{"full rank": full, "rank 3": deficient, "zero": make([]float64, m*n)} {
		b := append([]float64(nil), a...)
		if err := LUBasis(l, m, n, b, m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkLU(t, name, m, n, func(i, c int) float64 { return b[c*m+i] })
		// span(P·L) contains every column of a.
		q := append([]float64(nil), b...)
		if err := OrthQR(l, m, n, q, m); err != nil {
			t.Fatal(err)
		}
		checkInSpan(t, name, m, n, q, a)
		// float32 through the other symbol, with a leading dimension > m.
		lda := m + 3
		s := make([]float32, lda*n)
		for c := range n {
			for i := range m {
				s[c*lda+i] = float32(a[c*m+i])
			}
		}
		if err := LUBasis(l, m, n, s, lda); err != nil {
			t.Fatalf("%s float32: %v", name, err)
		}
		checkLU(t, name+" float32", m, n, func(i, c int) float64 { return float64(s[c*lda+i]) })
	}
	if err := LUBasis(l, 3, 5, make([]float32, 15), 3); err == nil {
		t.Error("LU basis of a wide matrix: no error")
	}
	if err := LUBasis(l, 5, 3, make([]float32, 14), 5); err == nil {
		t.Error("LU basis of a short slice: no error")
	}
}

// checkLU checks that the m×n matrix at is P·L: every column c has a 1 in
// a pivot row of its own that is 0 in all later columns, and no entry
// exceeds 1 in magnitude. (Pivot rows are found greedily, first column
// first: a row that qualifies for column c has zeros in the later columns,
// so taking it never takes a later column's pivot.)
func checkLU(t *testing.T, name string, m, n int, at func(i, c int) float64) {
	t.Helper()
	used := make([]bool, m)
	for c := range n {
		found := false
		for i := 0; i < m && !found; i++ {
			if used[i] || at(i, c) != 1 {
				continue
			}
			found = true
			for c2 := c + 1; c2 < n && found; c2++ {
				found = at(i, c2) == 0
			}
			used[i] = found
		}
		if !found {
			t.Fatalf("%s: column %d has no pivot row (a 1 followed by zeros)", name, c)
		}
		for i := range m {
			if v := at(i, c); !(math.Abs(v) <= 1) {
				t.Fatalf("%s: entry (%d, %d) = %v, want |·| ≤ 1", name, i, c, v)
			}
		}
	}
}

// TestLUBasisTinyPivots: a matrix whose rows fall into the subnormal range
// drives ?getrf to pivots below the smallest normal number, where
// OpenBLAS's own getrf multiplies by an overflowing reciprocal (the case
// FuzzFactorize found). LUBasis must then report ErrLUBreakdown, or give a
// valid P·L — never entries that are not finite.
func TestLUBasisTinyPivots(t *testing.T) {
	l := requireLib(t)
	if !HasLU[float64](l) {
		t.Skipf("%s has no ?getrf", l.Vendor)
	}
	rng := rand.New(rand.NewPCG(10, 11))
	m, n := 31, 16
	a := make([]float64, m*n)
	for c := range n {
		for i := range m {
			a[c*m+i] = rng.NormFloat64() * math.Pow(10, -float64(min(i, 1))*296-3*float64(i))
		}
	}
	err := LUBasis(l, m, n, a, m)
	switch {
	case errors.Is(err, ErrLUBreakdown):
		t.Logf("%s: %v", l.Vendor, err)
	case err != nil:
		t.Fatal(err)
	default:
		checkLU(t, "tiny pivots", m, n, func(i, c int) float64 { return a[c*m+i] })
	}
}

// TestCholBasis: for a well-conditioned row-major matrix (with a row
// stride wider than it), CholBasis leaves Q = a·R⁻¹ with orthonormal
// columns and Qᵀ·a upper triangular (so Q spans a, column by column),
// without touching the padding; for an ill-conditioned one, a zero column
// or a NaN it reports ErrCholBreakdown and leaves a as it was.
func TestCholBasis(t *testing.T) {
	l := requireChol(t)
	testCholBasis[float64](t, l, 1e-12)
	testCholBasis[float32](t, l, 2e-4)
}

// requireChol returns the system library, skipping the test when it
// lacks what CholBasis and WideSVD need.
func requireChol(t *testing.T) *Lib {
	l := requireLib(t)
	if !HasChol[float64](l) || !HasChol[float32](l) {
		t.Skipf("%s has no ?trmm, dpotrf or dtrtri", l.Vendor)
	}
	return l
}

func testCholBasis[T float32 | float64](t *testing.T, l *Lib, tol float64) {
	rng := rand.New(rand.NewPCG(12, 13))
	m, n, lda := 200, 12, 15
	src := make([]T, m*lda)
	for i := range m {
		for c := range lda {
			if c < n {
				src[i*lda+c] = T(rng.NormFloat64() * math.Pow(3, float64(c%4))) // cond ≈ 30
			} else {
				src[i*lda+c] = 7 // padding
			}
		}
	}
	a := append([]T(nil), src...)
	if err := CholBasis(l, m, n, a, lda); err != nil {
		t.Fatalf("%T well conditioned: %v", a, err)
	}
	for i := range m {
		for c := n; c < lda; c++ {
			if a[i*lda+c] != 7 {
				t.Fatalf("%T: padding (%d, %d) overwritten: %v", a, i, c, a[i*lda+c])
			}
		}
	}
	for c1 := range n {
		for c2 := range n {
			var qq, qa float64
			for i := range m {
				qq += float64(a[i*lda+c1]) * float64(a[i*lda+c2])
				qa += float64(a[i*lda+c1]) * float64(src[i*lda+c2])
			}
			want := 0.0
			if c1 == c2 {
				want = 1
			}
			if math.Abs(qq-want) > tol {
				t.Fatalf("%T: (QᵀQ)[%d][%d] = %v; expected %v", a, c1, c2, qq, want)
			}
			if c1 > c2 && math.Abs(qa) > tol*math.Sqrt(float64(m))*9 {
				t.Fatalf("%T: (Qᵀa)[%d][%d] = %v; expected 0 (Q = a·R⁻¹, R upper triangular)", a, c1, c2, qa)
			}
		}
	}
	bad := map[string]func([]T){
		"nearly dependent": func(b []T) { // cond ≈ 10⁴
			for i := range m {
				b[i*lda+n-1] = b[i*lda] + T(1e-4*rng.NormFloat64())
			}
		},
		"zero column": func(b []T) {
			for i := range m {
				b[i*lda+3] = 0
			}
		},
		"NaN": func(b []T) { b[5*lda+2] = T(math.NaN()) },
	}
	for name, spoil := range bad {
		b := append([]T(nil), src...)
		spoil(b)
		before := append([]T(nil), b...)
		if err := CholBasis(l, m, n, b, lda); !errors.Is(err, ErrCholBreakdown) {
			t.Fatalf("%T %s: error %v; expected ErrCholBreakdown", b, name, err)
		}
		for i := range b {
			if b[i] != before[i] && !(b[i] != b[i] && before[i] != before[i]) {
				t.Fatalf("%T %s: element %d changed to %v after a breakdown", b, name, i, b[i])
			}
		}
	}
	var e *Error
	if err := CholBasis(l, 3, 5, make([]T, 15), 5); !errors.As(err, &e) {
		t.Errorf("%T wide: error %v; expected *Error", src, err)
	}
	if err := CholBasis(l, m, n, make([]T, m*n), n-1); !errors.As(err, &e) {
		t.Errorf("%T stride below the columns: error %v; expected *Error", src, err)
	}
}

// TestWideSVD: on a well-conditioned wide matrix (row strides wider than
// the matrices), WideSVD's singular values match ?gesdd's, u and vt have
// orthonormal columns and rows, and u·diag(s)·vt gives a back; on an
// ill-conditioned one it reports ErrCholBreakdown and leaves a as it was,
// to rounding.
func TestWideSVD(t *testing.T) {
	l := requireChol(t)
	testWideSVD[float64](t, l, 1e-12)
	testWideSVD[float32](t, l, 2e-5)
}

func testWideSVD[T float32 | float64](t *testing.T, l *Lib, tol float64) {
	rng := rand.New(rand.NewPCG(14, 15))
	m, n, lda, ldu, ldvt := 30, 200, 203, 31, 201
	src := make([]T, m*lda)
	for i := range m {
		for j := range n {
			src[i*lda+j] = T(rng.NormFloat64() * (1 + float64(i%7))) // cond ≈ 10
		}
	}
	a := append([]T(nil), src...)
	s := make([]float64, m)
	u, vt := make([]T, m*ldu), make([]T, m*ldvt)
	if err := WideSVD(l, m, n, a, lda, s, u, ldu, vt, ldvt, m); err != nil {
		t.Fatalf("%T: %v", a, err)
	}
	// ?gesdd's singular values of the same matrix (column-major aᵀ).
	at := make([]float64, n*m)
	for i := range m {
		for j := range n {
			at[i*n+j] = float64(src[i*lda+j])
		}
	}
	want := make([]float64, m)
	if err := Gesdd(l, n, m, at, n, want, make([]float64, n*m), n, make([]float64, m*m), m); err != nil {
		t.Fatal(err)
	}
	for i := range m {
		if math.Abs(s[i]-want[i]) > tol*want[0] || (i > 0 && s[i] > s[i-1]) {
			t.Fatalf("%T: σ[%d] = %v; ?gesdd %v (and decreasing)", a, i, s[i], want[i])
		}
	}
	for c1 := range m {
		for c2 := range m {
			var uu, vv float64
			for i := range m {
				uu += float64(u[i*ldu+c1]) * float64(u[i*ldu+c2])
			}
			for j := range n {
				vv += float64(vt[c1*ldvt+j]) * float64(vt[c2*ldvt+j])
			}
			want := 0.0
			if c1 == c2 {
				want = 1
			}
			if math.Abs(uu-want) > 10*tol || math.Abs(vv-want) > 10*tol {
				t.Fatalf("%T: (UᵀU)[%d][%d] = %v, (VᵀV)[%d][%d] = %v; expected %v", a, c1, c2, uu, c1, c2, vv, want)
			}
		}
	}
	var res, norm float64
	for i := range m {
		for j := range n {
			var v float64
			for c := range m {
				v += float64(u[i*ldu+c]) * s[c] * float64(vt[c*ldvt+j])
			}
			d := v - float64(src[i*lda+j])
			res += d * d
			norm += float64(src[i*lda+j]) * float64(src[i*lda+j])
		}
	}
	if math.Sqrt(res/norm) > 10*tol {
		t.Fatalf("%T: ‖a − u·s·vt‖/‖a‖ = %v", a, math.Sqrt(res/norm))
	}
	// Only the first 7 rows of vt: the same rows as the whole, to
	// rounding of the product (other partitions of it), nothing written
	// past them; more rows than m is an error.
	top := make([]T, 8*ldvt)
	for i := range top {
		top[i] = -7
	}
	a = append(a[:0], src...)
	if err := WideSVD(l, m, n, a, lda, make([]float64, m), make([]T, m*ldu), ldu, top, ldvt, 7); err != nil {
		t.Fatalf("%T, 7 rows: %v", a, err)
	}
	for i := range 7 {
		for j := range n {
			if d := math.Abs(float64(top[i*ldvt+j] - vt[i*ldvt+j])); d > tol {
				t.Fatalf("%T, 7 rows: vt[%d][%d] = %v; the whole SVD's %v", a, i, j, top[i*ldvt+j], vt[i*ldvt+j])
			}
		}
	}
	for i := 7 * ldvt; i < len(top); i++ {
		if top[i] != -7 {
			t.Fatalf("%T, 7 rows: element %d past them written", a, i)
		}
	}
	if err := WideSVD(l, m, n, append([]T(nil), src...), lda, s, u, ldu, vt, ldvt, m+1); err == nil {
		t.Errorf("%T: %d rows of vt of a %d-row matrix accepted", a, m+1, m)
	}
	bad := append([]T(nil), src...)
	for j := range n { // row 5 nearly row 0: cond ≈ 10⁵
		bad[5*lda+j] = bad[j] + T(1e-5*rng.NormFloat64())
	}
	before := append([]T(nil), bad...)
	if err := WideSVD(l, m, n, bad, lda, s, u, ldu, vt, ldvt, m); !errors.Is(err, ErrCholBreakdown) {
		t.Fatalf("%T ill conditioned: %v; expected ErrCholBreakdown", bad, err)
	}
	for i := range bad {
		if bad[i] != before[i] {
			t.Fatalf("%T ill conditioned: element %d changed", bad, i)
		}
	}
	var e *Error
	if err := WideSVD(l, 5, 3, make([]T, 15), 3, s, u, ldu, vt, ldvt, 5); !errors.As(err, &e) {
		t.Errorf("%T tall: %v; expected *Error", bad, err)
	}
}
