package lowrank_test

import (
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/la"
)

// device is a backend that computes on the CPU but, like a GPU, cannot
// borrow host memory (so products go block by block through uploads), and
// that runs out of "device memory" at the Nth upload when failAt > 0.
type device struct {
	failAt  int64
	uploads atomic.Int64
}

func (d *device) Name() string                { return "fake-device" }
func (d *device) Init() error                 { return nil }
func (d *device) Describe() []string          { return nil }
func (d *device) Float32() la.Engine[float32] { return devEngine[float32]{cpu.New().Float32(), d} }
func (d *device) Float64() la.Engine[float64] { return devEngine[float64]{cpu.New().Float64(), d} }

// devEngine embeds only la.Engine: the CPU engine's Borrow is hidden.
type devEngine[T la.Float] struct {
	la.Engine[T]
	d *device
}

func (e devEngine[T]) Upload(r, c int, data []T) (la.Mat, error) {
	if n := e.d.uploads.Add(1); e.d.failAt > 0 && n >= e.d.failAt {
		return nil, la.ErrDeviceMemory
	}
	return e.Engine.Upload(r, c, data)
}

// naive returns W + alpha·op(B·A) in float64 arithmetic.
func naive[T lowrank.Float](w, b, a lowrank.Matrix[T], alpha float64, transposed bool) []float64 {
	out := make([]float64, len(w.Data))
	for i := range w.Rows {
		for j := range w.Cols {
			var s float64
			for t := range b.Cols {
				if transposed {
					s += float64(b.At(j, t)) * float64(a.At(t, i))
				} else {
					s += float64(b.At(i, t)) * float64(a.At(t, j))
				}
			}
			out[i*w.Cols+j] = float64(w.At(i, j)) + alpha*s
		}
	}
	return out
}

func randomMatrix[T lowrank.Float](rows, cols int, rng *rand.Rand) lowrank.Matrix[T] {
	m, _ := lowrank.NewMatrix[T](rows, cols, nil)
	for i := range m.Data {
		m.Data[i] = T(rng.NormFloat64())
	}
	return m
}

// TestProducts checks AddTo, AddTransposedTo, Residual and Reconstruct
// against float64 loops on the CPU backends and on a device-like backend
// whose products go block by block (blocks of 7 elements, so rows and
// blocks do not line up).
func TestProducts(t *testing.T) {
	defer lowrank.SetProductBlock(7)()
	for name, b := range map[string]lowrank.Backend{"cpu": cpu.New(), "gonum": cpu.NewGonum(), "device": &device{}} {
		t.Run(name+"/float64", func(t *testing.T) { testProducts[float64](t, b, 1e-12) })
		t.Run(name+"/float32", func(t *testing.T) { testProducts[float32](t, b, 1e-5) })
	}
}

func testProducts[T lowrank.Float](t *testing.T, be lowrank.Backend, tol float64) {
	rng := rand.New(rand.NewPCG(5, 6))
	const d, k, r = 9, 5, 3
	b, a := randomMatrix[T](d, r, rng), randomMatrix[T](r, k, rng)
	f, err := lowrank.NewFactors(b, a)
	if err != nil {
		t.Fatal(err)
	}
	f.Backend = be
	near := func(what string, got []T, want []float64) {
		t.Helper()
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > tol*(1+math.Abs(want[i])) {
				t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
			}
		}
	}
	for _, transposed := range []bool{false, true} {
		rows, cols := d, k
		if transposed {
			rows, cols = k, d
		}
		w := randomMatrix[T](rows, cols, rng)
		want := naive(w, b, a, -0.5, transposed)
		var err error
		if transposed {
			err = f.AddTransposedTo(w, -0.5)
		} else {
			err = f.AddTo(w, -0.5)
		}
		if err != nil {
			t.Fatal(err)
		}
		near(map[bool]string{false: "AddTo", true: "AddTransposedTo"}[transposed], w.Data, want)
	}
	zero, _ := lowrank.NewMatrix[T](d, k, nil)
	ba, err := f.Reconstruct()
	if err != nil {
		t.Fatal(err)
	}
	near("Reconstruct", ba.Data, naive(zero, b, a, 1, false))

	w := randomMatrix[T](d, k, rng)
	diff := naive(w, b, a, -1, false)
	var want float64
	for _, v := range diff {
		want += v * v
	}
	want = math.Sqrt(want)
	if got, err := f.Residual(w); err != nil || math.Abs(got-want) > tol*want {
		t.Errorf("Residual = %v, %v; want %v", got, err, want)
	}
	if got, err := f.Residual(ba); err != nil || got > tol*10 {
		t.Errorf("Residual(B·A) = %v, %v; want 0", got, err)
	}
}

// TestProductErrors: wrong shapes, NaN in W (named, with its position) and
// a non-finite alpha are errors; nothing is written.
func TestProductErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	f, err := lowrank.NewFactors(randomMatrix[float64](4, 2, rng), randomMatrix[float64](2, 3, rng))
	if err != nil {
		t.Fatal(err)
	}
	w := randomMatrix[float64](4, 3, rng)
	before := append([]float64(nil), w.Data...)
	if err := f.AddTransposedTo(w, 1); !errors.Is(err, lowrank.ErrShape) || !strings.Contains(err.Error(), "expected 3×4") {
		t.Errorf("AddTransposedTo on 4×3: %v; want ErrShape", err)
	}
	if _, err := f.Residual(randomMatrix[float64](3, 4, rng)); !errors.Is(err, lowrank.ErrShape) {
		t.Errorf("Residual on 3×4: %v; want ErrShape", err)
	}
	if err := f.AddTo(w, math.Inf(1)); !errors.Is(err, lowrank.ErrNonFinite) || !strings.Contains(err.Error(), "alpha is +Inf") {
		t.Errorf("alpha +Inf: %v; want ErrNonFinite", err)
	}
	w.Set(2, 1, math.NaN())
	before[7] = math.NaN()
	err = f.AddTo(w, 1)
	var nf *lowrank.NonFiniteError
	if !errors.As(err, &nf) || nf.Name != "W" || nf.Row != 2 || nf.Col != 1 || !math.IsNaN(nf.Value) || !errors.Is(err, lowrank.ErrNonFinite) {
		t.Fatalf("NaN at W[2,1]: %v; want a NonFiniteError for W[2,1]", err)
	}
	if err.Error() != "lowrank: W[2,1] is NaN; expected finite values" {
		t.Errorf("message %q", err)
	}
	for i, v := range w.Data {
		if v != before[i] && !(math.IsNaN(v) && math.IsNaN(before[i])) {
			t.Fatalf("a failed AddTo changed W[%d]", i)
		}
	}
}

// TestProductFallback: a device that runs out of memory part-way through
// AddTo hands the rows it has not done to the CPU; every row is updated
// exactly once.
func TestProductFallback(t *testing.T) {
	defer lowrank.SetProductBlock(10)()
	var logs strings.Builder
	lowrank.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	defer lowrank.SetLogger(nil)
	rng := rand.New(rand.NewPCG(9, 10))
	const d, k, r = 12, 5, 2
	b, a := randomMatrix[float64](d, r, rng), randomMatrix[float64](r, k, rng)
	for _, transposed := range []bool{false, true} {
		for _, failAt := range []int64{1, 2, 4, 6} {
			f, _ := lowrank.NewFactors(b, a)
			f.Backend = &device{failAt: failAt}
			rows, cols := d, k
			if transposed {
				rows, cols = k, d
			}
			w := randomMatrix[float64](rows, cols, rng)
			want := naive(w, b, a, 2, transposed)
			add := f.AddTo
			if transposed {
				add = f.AddTransposedTo
			}
			if err := add(w, 2); err != nil {
				t.Fatalf("transposed %v, failing at upload %d: %v", transposed, failAt, err)
			}
			for i := range want {
				if math.Abs(w.Data[i]-want[i]) > 1e-12*(1+math.Abs(want[i])) {
					t.Fatalf("transposed %v, failing at upload %d: W[%d] = %v, want %v", transposed, failAt, i, w.Data[i], want[i])
				}
			}
		}
	}
	f, _ := lowrank.NewFactors(b, a)
	f.Backend = &device{failAt: 3}
	w := randomMatrix[float64](d, k, rng)
	if _, err := f.Residual(w); err != nil {
		t.Errorf("Residual on a device out of memory: %v; want the CPU's answer", err)
	}
	if !strings.Contains(logs.String(), "falling back to the CPU") {
		t.Errorf("no fallback logged: %q", logs.String())
	}
}

// TestNorm: Matrix.Norm measures and checks in one pass.
func TestNorm(t *testing.T) {
	m, _ := lowrank.NewMatrix(2, 2, []float32{3, 0, 0, -4})
	if n, err := m.Norm(); err != nil || n != 5 {
		t.Errorf("Norm = %v, %v; want 5", n, err)
	}
	m.Set(1, 0, float32(math.Inf(-1)))
	_, err := m.Norm()
	var nf *lowrank.NonFiniteError
	if !errors.As(err, &nf) || nf.Row != 1 || nf.Col != 0 || !math.IsInf(nf.Value, -1) || err.Error() != "lowrank: matrix[1,0] is -Inf; expected finite values" {
		t.Errorf("Norm with -Inf at [1,0]: %v", err)
	}
	huge, _ := lowrank.NewMatrix(1, 2, []float64{math.MaxFloat64, math.MaxFloat64})
	if n, err := huge.Norm(); err != nil || !math.IsInf(n, 1) {
		t.Errorf("Norm beyond float64: %v, %v; want +Inf and no error", n, err)
	}
	if _, err := (lowrank.Matrix[float64]{Rows: 2, Cols: 2, Data: make([]float64, 3)}).Norm(); !errors.Is(err, lowrank.ErrShape) {
		t.Errorf("Norm of a short matrix: %v; want ErrShape", err)
	}
}

// TestNonFiniteError: input errors carry the input's name and the
// element's position, for callers that report them in their own terms.
func TestNonFiniteError(t *testing.T) {
	w, _ := lowrank.NewMatrix[float32](3, 4, nil)
	w.Set(2, 3, float32(math.Inf(1)))
	_, err := lowrank.Factorize(w, lowrank.Rank(1))
	var nf *lowrank.NonFiniteError
	if !errors.As(err, &nf) || nf.Name != "W" || nf.Row != 2 || nf.Col != 3 || !math.IsInf(nf.Value, 1) {
		t.Errorf("Factorize with +Inf at [2,3]: %v", err)
	}
	f, _ := lowrank.NewFactors(randomMatrix[float64](2, 1, rand.New(rand.NewPCG(1, 1))), randomMatrix[float64](1, 3, rand.New(rand.NewPCG(1, 2))))
	_, err = f.Apply([]float64{0, 0, math.NaN()}, nil)
	if !errors.As(err, &nf) || nf.Name != "x" || nf.Row != 0 || nf.Col != 2 || err.Error() != "lowrank: x[2] is NaN; expected finite values" {
		t.Errorf("Apply with NaN at x[2]: %v", err)
	}
}
