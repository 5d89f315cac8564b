package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

// The --calibration file of factorize: for each weight it calibrates, a
// tensor of the same name holding the k×k second moment C = XᵀX/n of the
// inputs that weight sees (F32 or F64), as scripts/collect_stats.py
// writes it. A weight with an entry is factorized for its outputs
// (lowrank.WithInputCovariance); one without falls back to plain SVD and
// is reported so. The file is read lazily, one matrix at a time, each
// counted in the memory budget with the tensor it calibrates.

// Calibration statuses, in the table, the report and the metadata.
const (
	calCalibrated = "calibrated"
	calPlain      = "plain (no statistics)"
	// stBias is the status of a bias that took its weight's mean error.
	stBias = "bias shifted"
)

// meanSuffix names the entry holding a weight's input mean μ (length k):
// with it, and a bias of the weight's dtype to absorb it, the weight is
// factorized with lowrank.WithInputMoments and the bias is written
// shifted by (W − B·A)·μ.
const meanSuffix = ".input_mean"

// absorb is a bias that takes the mean output error of its weight's
// factors. The weight's computation sets shift (nil when the weight
// stays dense) and closes done, always; the bias comes right after the
// weight in the pipeline, so it waits only for a computation under way.
type absorb struct {
	bias  safetensors.TensorInfo
	done  chan struct{}
	shift []float64
}

// calibration is an open --calibration file.
type calibration struct {
	f *safetensors.File
	// has holds the selected tensors whose entry was checked before the
	// work; read-only once the pipeline runs.
	has  map[string]bool
	seen map[string]bool // entries some selected tensor asked for
	// meanUnused says, for each input mean whose bias cannot take the
	// mean error (another dtype or shape than the weight as written), why.
	meanUnused []string
	// absorbs maps a weight to the bias that takes its mean error,
	// biases the bias back to it.
	absorbs, biases map[string]*absorb
}

func newCalibration(f *safetensors.File) *calibration {
	return &calibration{f: f, has: map[string]bool{}, seen: map[string]bool{},
		absorbs: map[string]*absorb{}, biases: map[string]*absorb{}}
}

// plan checks the entries of the selected items before any work, and
// returns the items with each bias that absorbs its weight's mean error
// moved right after the weight (same dtype: the alignment holds).
//
// A file that calibrates none of the selected tensors is an error: its
// names are not the model's (statistics collected under another prefix,
// or for another model), and going on would give plain SVD to a caller
// who asked for data-aware factors.
func plan[I any](c *calibration, model source, items []I, info func(I) (safetensors.TensorInfo, bool, safetensors.DType), mk func(safetensors.TensorInfo) I) ([]I, error) {
	firstSel := ""
	for i, it := range items {
		if err := tick(i); err != nil {
			return nil, err
		}
		t, sel, out := info(it)
		if !sel {
			continue
		}
		if firstSel == "" {
			firstSel = t.Name
		}
		_, k, _ := t.Matrix()
		has, err := c.check(t.Name, k)
		if err != nil {
			return nil, err
		}
		if has {
			if err := c.checkMean(model, t, out); err != nil {
				return nil, err
			}
		}
	}
	if len(c.has) == 0 && firstSel != "" {
		ts := c.f.Tensors()
		if len(ts) == 0 {
			return nil, fmt.Errorf("lowrank: %s: the calibration file holds no matrix; expected, for each weight to calibrate, a k×k tensor of its name (%q, say)", c.f.Path(), firstSel)
		}
		for _, t := range ts {
			if mt, ok := model.Tensor(t.Name); ok {
				// The names are the model's; the weights are not factorized.
				why := "not selected (--include, --exclude, or kept dense)"
				if len(mt.Shape) != 2 {
					why = fmt.Sprintf("%s %s, and factorize takes 2-D weights only (a conv's statistics are not used)", mt.DType, shapeString(mt.Shape))
				}
				return nil, fmt.Errorf("lowrank: %s: none of its %d tensors calibrates a tensor to factorize: %q is a tensor of %s but %s; expected entries for the 2-D weights to factorize (the first is %q)", c.f.Path(), len(ts), t.Name, model.Path(), why, firstSel)
			}
		}
		return nil, fmt.Errorf("lowrank: %s: none of its %d tensors names a tensor to factorize (first: %q; the first tensor to factorize is %q); expected entries named after the weights they calibrate, as scripts/collect_stats.py writes them for this model", c.f.Path(), len(ts), ts[0].Name, firstSel)
	}
	if len(c.biases) == 0 {
		return items, nil
	}
	sorted := make([]I, 0, len(items))
	for _, it := range items {
		t, _, _ := info(it)
		if c.biases[t.Name] != nil {
			continue
		}
		sorted = append(sorted, it)
		if ab := c.absorbs[t.Name]; ab != nil {
			sorted = append(sorted, mk(ab.bias))
		}
	}
	return sorted, nil
}

// check looks up the entry for the selected tensor name, of k columns,
// before any work: it reports whether there is one, and refuses one that
// is not a k×k F32 or F64 matrix.
func (c *calibration) check(name string, k int) (bool, error) {
	t, ok := c.f.Tensor(name)
	if !ok {
		return false, nil
	}
	c.seen[name] = true
	if t.DType != safetensors.F32 && t.DType != safetensors.F64 {
		return false, tensorErr(c.f.Path(), name, "calibration matrix of dtype %s; expected F32 or F64 (the second moment XᵀX/n of the weight's inputs)", t.DType)
	}
	if len(t.Shape) != 2 || t.Shape[0] != k || t.Shape[1] != k {
		return false, tensorErr(c.f.Path(), name, "calibration matrix of shape %v; expected [%d %d] for the weight's %d input columns (XᵀX/n of its inputs)", t.Shape, k, k, k)
	}
	c.has[name] = true
	return true, nil
}

// checkMean looks, before any work, for the calibrated weight t's input
// mean and for a bias to absorb the mean error: NAME.input_mean (length
// k, F32 or F64) and, for a NAME ending in "weight", the same name ending
// in "bias" in the model, of shape [d] and of the dtype the weight is
// written in. Without both, the weight is calibrated about zero.
func (c *calibration) checkMean(model source, t safetensors.TensorInfo, out safetensors.DType) error {
	d, k, _ := t.Matrix()
	mt, ok := c.f.Tensor(t.Name + meanSuffix)
	if !ok {
		return nil
	}
	c.seen[mt.Name] = true
	if (mt.DType != safetensors.F32 && mt.DType != safetensors.F64) || len(mt.Shape) != 1 || mt.Shape[0] != k {
		return tensorErr(c.f.Path(), mt.Name, "input mean of dtype %s and shape %v; expected F32 or F64 of shape [%d], the mean of the weight's inputs", mt.DType, mt.Shape, k)
	}
	base, isWeight := strings.CutSuffix(t.Name, "weight")
	if !isWeight {
		return nil
	}
	bt, ok := model.Tensor(base + "bias")
	if !ok {
		return nil // a layer without a bias: about zero, as documented
	}
	if len(bt.Shape) != 1 || bt.Shape[0] != d || bt.DType != out {
		c.meanUnused = append(c.meanUnused, fmt.Sprintf("%q: bias %q is %s %s, the weight is written %s %d×%d",
			mt.Name, bt.Name, bt.DType, shapeString(bt.Shape), out, d, k))
		return nil
	}
	ab := &absorb{bias: bt, done: make(chan struct{})}
	c.absorbs[t.Name], c.biases[bt.Name] = ab, ab
	return nil
}

// bytes is the memory the entry for a k-column weight takes while its
// tensor is computed: C in float64.
func calibrationBytes(k int) int64 { return mul(8, k, k) }

// shapeOnly is the option EstimateMemory needs for a calibrated d×k
// weight: only C's dimensions are read.
func shapeOnly(k int) lowrank.Option {
	return lowrank.WithInputCovariance(lowrank.Matrix[float64]{Rows: k, Cols: k})
}

// option reads the entries for name and returns the option that makes
// Factorize use them.
func (c *calibration) option(name string) (lowrank.Option, error) {
	m, err := readMatrix[float64](c.f, name)
	if err != nil {
		return nil, err
	}
	if c.absorbs[name] == nil {
		return lowrank.WithInputCovariance(m), nil
	}
	mean, err := c.f.Float64s(name + meanSuffix)
	if err != nil {
		return nil, err
	}
	return lowrank.WithInputMoments(m, mean), nil
}

// biasOutcome writes the bias t shifted by its weight's mean error, or
// copies it when the weight stayed dense.
func biasOutcome(f source, t safetensors.TensorInfo, ab *absorb) (outcome, error) {
	select {
	case <-ab.done:
	case <-cmdContext.Done():
		return outcome{}, errInterrupted
	}
	o := copyOutcome(f, t)
	if ab.shift == nil {
		return o, nil
	}
	b, err := f.Float64s(t.Name)
	if err != nil {
		return outcome{}, err
	}
	for i := range b {
		b[i] += ab.shift[i]
	}
	o.row.Status, o.row.listed = stBias, true
	o.write = func(w *safetensors.Writer) error { return w.WriteFloat64(t.Name, t.DType, t.Shape, b) }
	return o, nil
}

// fault names the calibration file and the tensor for an error of
// Factorize that is about the statistics (not symmetric, a negative
// eigenvalue, a NaN), and returns nil for any other.
func (c *calibration) fault(err error, name string) error {
	var nf *lowrank.NonFiniteError
	if errors.As(err, &nf) && nf.Name == "C" {
		return tensorErr(c.f.Path(), name, "calibration matrix element [%d, %d] is %v; expected finite values", nf.Row, nf.Col, nf.Value)
	}
	if errors.As(err, &nf) && nf.Name == "mean" {
		return tensorErr(c.f.Path(), name+meanSuffix, "element %d is %v; expected finite values", nf.Col, nf.Value)
	}
	if errors.Is(err, lowrank.ErrInputStats) {
		return tensorErr(c.f.Path(), name, "calibration matrix: %s", strip(err))
	}
	return nil
}

// unused returns the entries that no selected tensor asked for, sorted.
func (c *calibration) unused() []string {
	var out []string
	for _, t := range c.f.Tensors() {
		if !c.seen[t.Name] {
			out = append(out, t.Name)
		}
	}
	sort.Strings(out)
	return out
}

// note is what the command says, on stderr, one line each, about entries
// that calibrated nothing (a misspelt name, statistics for another model)
// and input means that could not be used.
func (c *calibration) note() []string {
	var notes []string
	if u := c.unused(); len(u) > 0 {
		notes = append(notes, fmt.Sprintf("lowrank: note: %d of the %d matrices in %s match no selected tensor (first: %q)",
			len(u), len(c.f.Tensors()), filepath.Base(c.f.Path()), u[0]))
	}
	if m := c.meanUnused; len(m) > 0 {
		notes = append(notes, fmt.Sprintf("lowrank: note: %d input means in %s were not used, their weights calibrated about zero with C alone (first: %s); expected a bias of the weight's output dtype and shape to take the mean error (--dtype keep)",
			len(m), filepath.Base(c.f.Path()), m[0]))
	}
	return notes
}

// calibrationPathErr refuses a --calibration path that is a folder or a
// JSON file (a model folder or its index, given by mistake), which would
// otherwise be read as a safetensors header and refused for its length.
func calibrationPathErr(path string) error {
	what := ""
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		what = "a folder"
	} else if strings.HasSuffix(strings.ToLower(path), ".json") {
		what = "a JSON file"
	}
	if what == "" {
		return nil
	}
	return fmt.Errorf("lowrank: %s: --calibration is %s; expected the one .safetensors file of statistics that scripts/collect_stats.py writes (a k×k tensor per weight, named after it)", path, what)
}
