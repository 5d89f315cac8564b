package main

import (
	"errors"

	"github.com/lowrank-go/lowrank"
)

// The commands' products and norms go through the library, on the backend
// a command runs on: Factors.AddTo and AddTransposedTo (merge), Residual
// with Factors.Norm (the error of factors rounded to a narrower dtype), and
// Matrix.Norm. The library's checks are also the only NaN/Inf scan a
// tensor gets; tensorFault turns what they find into the commands' message.

// addProduct adds alpha·B·A to w, or alpha·(B·A)ᵀ when w is stored
// transposed (k×d, PEFT's fan_in_fan_out), on the default backend. ops
// names the tensors W, B and A were read from, for errors.
func addProduct[T lowrank.Float](w lowrank.Matrix[T], alpha float64, b, a lowrank.Matrix[T], transposed bool, ops operands) error {
	f, err := lowrank.NewFactors(b, a)
	if err == nil {
		if transposed {
			err = f.AddTransposedTo(w, T(alpha))
		} else {
			err = f.AddTo(w, T(alpha))
		}
	}
	return ops.fault(err)
}

// product returns B·A on the default backend. ops names the tensors B and
// A were read from, for errors.
func product[T lowrank.Float](b, a lowrank.Matrix[T], ops operands) (lowrank.Matrix[T], error) {
	f, err := lowrank.NewFactors(b, a)
	if err != nil {
		return lowrank.Matrix[T]{}, ops.fault(err)
	}
	w, err := f.Reconstruct()
	return w, ops.fault(err)
}

// productInto writes B·A into c (B.Rows × A.Cols values) on the default
// backend: densify's pieces. ops names the tensors B and A were read from.
func productInto[T lowrank.Float](c []T, b, a lowrank.Matrix[T], ops operands) error {
	clear(c)
	f, err := lowrank.NewFactors(b, a)
	if err == nil {
		err = f.AddTo(lowrank.Matrix[T]{Rows: b.Rows, Cols: a.Cols, Data: c}, 1)
		f.Close()
	}
	return ops.fault(err)
}

// relResidual returns ‖W − B·A‖_F / ‖W‖_F (0 when W = 0) for the factors
// f as they are now (rounded to the output dtype), on the backend that
// computed them; norm is ‖W‖_F as Factorize measured it (Factors.Norm).
func relResidual[T lowrank.Float](w lowrank.Matrix[T], f *lowrank.Factors[T], norm float64) (float64, error) {
	if norm == 0 {
		return 0, nil
	}
	res, err := f.Residual(w)
	return res / norm, err
}

// operands maps the library's names of a call's inputs ("W", "A", "B") to
// the file and tensor each was read from.
type operands map[string]struct{ file, tensor string }

// fault returns err as the commands report it: a NaN or ±Inf the library
// found names the file and tensor it was read from (`tensor "a.weight":
// element [0, 2] is NaN; expected finite values`), and any other error
// names W's tensor.
func (ops operands) fault(err error) error {
	if err == nil {
		return nil
	}
	var nf *lowrank.NonFiniteError
	if errors.As(err, &nf) {
		if op, ok := ops[nf.Name]; ok {
			return tensorErr(op.file, op.tensor, "element [%d, %d] is %v; expected finite values", nf.Row, nf.Col, nf.Value)
		}
	}
	op := ops["W"]
	return tensorErr(op.file, op.tensor, "%s", strip(err))
}

// tensorFault is operands.fault for a call whose one input is tensor.
func tensorFault(err error, file, tensor string) error {
	var nf *lowrank.NonFiniteError
	if errors.As(err, &nf) {
		return tensorErr(file, tensor, "element [%d, %d] is %v; expected finite values", nf.Row, nf.Col, nf.Value)
	}
	return &causedErr{msg: tensorErr(file, tensor, "%s", strip(err)).Error(), cause: err}
}

// causedErr is an error message of ours that keeps its cause for
// errors.As (a CUDA failure under --devices: devices.go).
type causedErr struct {
	msg   string
	cause error
}

func (e *causedErr) Error() string { return e.msg }
func (e *causedErr) Unwrap() error { return e.cause }
