package model

import (
	"sort"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

// Tensors is what Save writes: factorized tensors, each NAME as NAME.A
// and NAME.B with its record in the lowrank metadata, dense matrices and
// vectors (biases, norms) under their own names.
type Tensors[T lowrank.Float] struct {
	Factors map[string]*lowrank.Factors[T]
	Dense   map[string]lowrank.Matrix[T]
	Vectors map[string][]T
}

// Save writes t to a new factorized model file at path in dtype dt (F16,
// BF16, F32 or F64), in one call: the format lowrank factorize writes
// and Open reads, the names in sorted order. The file appears whole or not
// at all; Save fails when path exists, when two entries would give the
// same tensor name (a factorized "x" and a dense "x.A"), and on what
// AddFactors and AddDense refuse. For more control (the source's
// metadata kept, dense tensors marked with a reason, tensors copied from
// another file, overwriting) use CreateWith and the Writer.
func Save[T lowrank.Float](path string, t Tensors[T], dt safetensors.DType) error {
	if len(t.Factors)+len(t.Dense)+len(t.Vectors) == 0 {
		return fileErr(lowrank.ErrEmpty, path, "no tensors to save; expected factors, dense matrices or vectors")
	}
	kind := map[string]string{}
	add := func(name, what string) error {
		if prev, dup := kind[name]; dup {
			return tensorErr(lowrank.ErrShape, path, name, "written by %s and by %s; expected each tensor name once", prev, what)
		}
		kind[name] = what
		return nil
	}
	for name := range t.Factors {
		if err := add(name+".A", "factors "+name); err != nil {
			return err
		}
		if err := add(name+".B", "factors "+name); err != nil {
			return err
		}
	}
	for name := range t.Dense {
		if err := add(name, "Dense"); err != nil {
			return err
		}
	}
	for name := range t.Vectors {
		if err := add(name, "Vectors"); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(t.Factors)+len(t.Dense)+len(t.Vectors))
	for name := range t.Factors {
		names = append(names, name)
	}
	for name := range t.Dense {
		names = append(names, name)
	}
	for name := range t.Vectors {
		names = append(names, name)
	}
	sort.Strings(names)
	w, err := Create(path)
	if err != nil {
		return err
	}
	for _, name := range names {
		if f, ok := t.Factors[name]; ok {
			err = AddFactors(w, name, f, dt)
		} else if m, ok := t.Dense[name]; ok {
			err = AddDense(w, name, m, dt)
		} else {
			err = addVector(w, name, t.Vectors[name], dt)
		}
		if err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// addVector writes v as the 1-D tensor name in dtype dt.
func addVector[T lowrank.Float](w *Writer, name string, v []T, dt safetensors.DType) error {
	if !dt.IsFloat() {
		return tensorErr(safetensors.ErrDType, w.path(), name, "dtype %s; expected F16, BF16, F32 or F64", dt)
	}
	if err := fits(w.path(), name, lowrank.Matrix[T]{Rows: 1, Cols: len(v), Data: v}, dt); err != nil {
		return err
	}
	switch v := any(v).(type) {
	case []float32:
		return w.w.WriteFloat32(name, dt, []int{len(v)}, v)
	case []float64:
		return w.w.WriteFloat64(name, dt, []int{len(v)}, v)
	}
	return nil
}
