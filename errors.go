package lowrank

import (
	"context"
	"errors"
	"fmt"

	"github.com/lowrank-go/lowrank/la"
)

// Sentinel errors. Every error lowrank returns for bad input wraps one of
// these, so callers can test with errors.Is; the message itself says what
// was wrong and what was expected.
var (
	// ErrEmpty: a matrix or vector with no elements, or a nil input.
	ErrEmpty = errors.New("lowrank: empty input")
	// ErrShape: dimensions or lengths that do not fit together.
	ErrShape = errors.New("lowrank: shape mismatch")
	// ErrNonFinite: a NaN or ±Inf in a matrix or vector.
	ErrNonFinite = errors.New("lowrank: non-finite value")
	// ErrRank: a rank outside [1, min(d, k)].
	ErrRank = errors.New("lowrank: invalid rank")
	// ErrPolicy: a rank policy parameter outside its domain.
	ErrPolicy = errors.New("lowrank: invalid rank policy")
	// ErrOption: an option with an invalid value.
	ErrOption = errors.New("lowrank: invalid option")
	// ErrInputStats: input statistics (WithInputCovariance,
	// WithInputScale) that are not what they should be: a C that is not
	// symmetric or has a negative eigenvalue, a scale ≤ 0. Such errors
	// wrap ErrOption too.
	ErrInputStats = errors.New("lowrank: invalid input statistics")
	// ErrBackend: the requested backend cannot run here.
	ErrBackend = errors.New("lowrank: backend not available")
	// ErrNoConvergence: the SVD solver did not converge (wrapped in the
	// backend's error).
	ErrNoConvergence = la.ErrNoConvergence
)

// inputError is an error about the caller's input: its text starts with
// "lowrank: " and it wraps one of the sentinels.
type inputError struct {
	kind error
	msg  string
}

func (e *inputError) Error() string { return "lowrank: " + e.msg }
func (e *inputError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &inputError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// NonFiniteError is the error for a NaN or ±Inf in an input matrix or
// vector. It names the input and the element, so that a caller who read
// the matrix from somewhere can say where the bad value is, and it wraps
// ErrNonFinite.
type NonFiniteError struct {
	// Name is the input as the message calls it: "W", "X", "B", "A",
	// "x", "bias", or "matrix" for Matrix.Norm.
	Name string
	// Row and Col locate the element in a matrix; in a vector, Row is 0
	// and Col is the index.
	Row, Col int
	// Value is the element: NaN, +Inf or -Inf.
	Value float64

	vector bool
}

func (e *NonFiniteError) Error() string {
	if e.vector {
		return fmt.Sprintf("lowrank: %s[%d] is %v; expected finite values", e.Name, e.Col, e.Value)
	}
	return fmt.Sprintf("lowrank: %s[%d,%d] is %v; expected finite values", e.Name, e.Row, e.Col, e.Value)
}

func (e *NonFiniteError) Unwrap() error { return ErrNonFinite }

// backendError wraps a failure inside a backend (a device error, a solver
// that did not converge) so that its text starts with "lowrank: " while
// errors.Is and errors.As still reach the backend's own typed error.
type backendError struct {
	op  string
	err error
}

func (e *backendError) Error() string { return "lowrank: " + e.op + ": " + e.err.Error() }
func (e *backendError) Unwrap() error { return e.err }

func wrapBackend(op string, err error) error {
	if err == nil {
		return nil
	}
	return &backendError{op: op, err: err}
}

// stoppedError is the error of a computation stopped by its context: its
// text starts with "lowrank: " and it wraps ctx.Err(), so that
// errors.Is(err, context.Canceled) (or context.DeadlineExceeded) holds.
type stoppedError struct {
	what string
	err  error
}

func (e *stoppedError) Error() string { return "lowrank: " + e.what + " stopped: " + e.err.Error() }
func (e *stoppedError) Unwrap() error { return e.err }

// stopped returns the error for a what on w that has not started because
// ctx has already ended (or is nil: an ErrOption error), or nil.
func stopped[T Float](ctx context.Context, what string, w Matrix[T]) error {
	if ctx == nil {
		return errorf(ErrOption, "nil context for the %s of a %d×%d matrix; expected a context.Context (context.Background() when there is none)", what, w.Rows, w.Cols)
	}
	if err := ctx.Err(); err != nil {
		return &stoppedError{what: fmt.Sprintf("%s of a %d×%d matrix", what, w.Rows, w.Cols), err: err}
	}
	return nil
}

// stoppedOr returns err, or the stoppedError of a what on w when err
// comes from ctx having ended (at a block boundary, or from an engine
// that stopped waiting for a resource).
func stoppedOr[T Float](ctx context.Context, what string, w Matrix[T], err error) error {
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
		return &stoppedError{what: fmt.Sprintf("%s of a %d×%d matrix", what, w.Rows, w.Cols), err: cerr}
	}
	return err
}
