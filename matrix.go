package lowrank

import (
	"math"

	"github.com/lowrank-go/lowrank/la"
)

// Float is the set of element types lowrank works in: float32 and float64.
type Float = la.Float

// Matrix is a dense row-major matrix: element (i, j) is Data[i*Cols+j].
// It is the layout of Go slices, of gonum's mat.Dense and of safetensors
// files, so weights can be handed over without copying.
type Matrix[T Float] struct {
	Rows, Cols int
	Data       []T
}

// NewMatrix returns the rows×cols matrix backed by data, which is used,
// not copied. It returns an error wrapping ErrEmpty or ErrShape when a
// dimension is less than 1 or len(data) != rows·cols. A nil data allocates
// a zero matrix.
func NewMatrix[T Float](rows, cols int, data []T) (Matrix[T], error) {
	if rows < 1 || cols < 1 {
		return Matrix[T]{}, errorf(ErrEmpty, "matrix is %d×%d; expected at least 1×1", rows, cols)
	}
	if rows > math.MaxInt/cols {
		return Matrix[T]{}, errorf(ErrShape, "matrix %d×%d has more elements than an int can count", rows, cols)
	}
	if data == nil {
		data = make([]T, rows*cols)
	}
	if len(data) != rows*cols {
		return Matrix[T]{}, errorf(ErrShape, "matrix data has %d values; expected rows·cols = %d·%d = %d", len(data), rows, cols, rows*cols)
	}
	return Matrix[T]{Rows: rows, Cols: cols, Data: data}, nil
}

// At returns element (i, j).
func (m Matrix[T]) At(i, j int) T { return m.Data[i*m.Cols+j] }

// Set sets element (i, j) to v.
func (m Matrix[T]) Set(i, j int, v T) { m.Data[i*m.Cols+j] = v }

// Row returns row i, sharing m's storage.
func (m Matrix[T]) Row(i int) []T { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// Transpose returns a new cols×rows matrix holding the transpose of m. It
// copies: unlike gonum's mat.Dense.T, which returns a view, the result
// shares no storage with m.
func (m Matrix[T]) Transpose() Matrix[T] {
	t := Matrix[T]{Rows: m.Cols, Cols: m.Rows, Data: make([]T, len(m.Data))}
	for i := range m.Rows {
		for j := range m.Cols {
			t.Data[j*m.Rows+i] = m.Data[i*m.Cols+j]
		}
	}
	return t
}

// T returns a copy of the transpose of m.
//
// Deprecated: T copies, where gonum's T returns a view; use Transpose,
// which says so.
func (m Matrix[T]) T() Matrix[T] { return m.Transpose() }

// Norm returns the Frobenius norm of m, computed in float64 without
// overflow or underflow (on every core for a large m):
//
//	‖m‖_F = sqrt(Σᵢⱼ m_ij²)
//
// It also checks m: it returns an error wrapping ErrEmpty or ErrShape for
// a malformed matrix, and a *NonFiniteError naming the first NaN or ±Inf.
// The norm is finite exactly when every element is, so the check costs no
// second pass over m. For float64 elements so large that the norm exceeds
// the float64 range, it returns +Inf and no error.
func (m Matrix[T]) Norm() (float64, error) { return m.norm("matrix") }

// norm is Norm with errors that call m name.
func (m Matrix[T]) norm(name string) (float64, error) {
	if err := m.checkShape(name); err != nil {
		return 0, err
	}
	n := frobenius(m.Data)
	if math.IsNaN(n) || math.IsInf(n, 0) {
		if i := firstNonFinite(m.Data); i >= 0 {
			return 0, m.nonFinite(name, i)
		}
	}
	return n, nil
}

// validate checks that m is a usable, finite matrix; name is how errors
// call it ("W", "X").
func (m Matrix[T]) validate(name string) error {
	if err := m.checkShape(name); err != nil {
		return err
	}
	if i := firstNonFinite(m.Data); i >= 0 {
		return m.nonFinite(name, i)
	}
	return nil
}

// checkShape checks that m is non-empty and holds rows·cols values.
func (m Matrix[T]) checkShape(name string) error {
	if m.Rows < 1 || m.Cols < 1 || m.Data == nil {
		return errorf(ErrEmpty, "%s is %d×%d with %d values; expected a non-empty matrix", name, m.Rows, m.Cols, len(m.Data))
	}
	if m.Rows > math.MaxInt/m.Cols || len(m.Data) != m.Rows*m.Cols {
		return errorf(ErrShape, "%s has %d values; expected rows·cols = %d·%d", name, len(m.Data), m.Rows, m.Cols)
	}
	return nil
}

// nonFinite is the error for the NaN or ±Inf at index i of m.
func (m Matrix[T]) nonFinite(name string, i int) error {
	return &NonFiniteError{Name: name, Row: i / m.Cols, Col: i % m.Cols, Value: float64(m.Data[i])}
}

// checkVector validates a vector argument of the expected length.
func checkVector[T Float](name string, v []T, want int) error {
	if len(v) != want {
		return errorf(ErrShape, "%s has length %d; expected %d", name, len(v), want)
	}
	if i := firstNonFinite(v); i >= 0 {
		return &NonFiniteError{Name: name, Col: i, Value: float64(v[i]), vector: true}
	}
	return nil
}
