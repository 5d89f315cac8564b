package model_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// Save writes factors, dense matrices and vectors in one call; Open reads
// them back as layers that compute what the factors compute.
func TestSaveRoundTrip(t *testing.T) {
	path := tmp(t, "saved.safetensors")
	rng := rand.New(rand.NewPCG(1, 2))
	W, _ := lowrank.NewMatrix(12, 9, to32(gauss(rng, 12*9, 1)))
	f, err := lowrank.Factorize(W, lowrank.Rank(3))
	if err != nil {
		t.Fatal(err)
	}
	D, _ := lowrank.NewMatrix(4, 9, to32(gauss(rng, 4*9, 1)))
	bias := []float32{1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12}
	err = model.Save(path, model.Tensors[float32]{
		Factors: map[string]*lowrank.Factors[float32]{"blocks.0.fc.weight": f},
		Dense:   map[string]lowrank.Matrix[float32]{"head.weight": D},
		Vectors: map[string][]float32{"blocks.0.fc.bias": bias},
	}, safetensors.F32)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := strings.Join(m.Names(), " "); got != "blocks.0.fc head" {
		t.Errorf("modules %q; want blocks.0.fc head", got)
	}
	if rec := m.Recorded().Tensors["blocks.0.fc.weight"]; rec.Rank != 3 || rec.RelError != f.RelError || rec.Shape[0] != 12 || rec.Shape[1] != 9 {
		t.Errorf("record %+v", rec)
	}
	x := make([]float32, 9)
	for i := range x {
		x[i] = float32(i) - 4
	}
	l, err := m.Linear("blocks.0.fc")
	if err != nil {
		t.Fatal(err)
	}
	y := make([]float32, 12)
	if err := l.Forward(y, x); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, 12)
	if err := f.ApplyTo(want, x, bias); err != nil {
		t.Fatal(err)
	}
	for i := range y {
		if math.Abs(float64(y[i]-want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("y[%d] = %v; factors give %v", i, y[i], want[i])
		}
	}
	h, err := m.Linear("head")
	if err != nil {
		t.Fatal(err)
	}
	yh := make([]float32, 4)
	if err := h.Forward(yh, x); err != nil {
		t.Fatal(err)
	}
	for i := range yh {
		var s float32
		for j := range x {
			s += D.Data[i*9+j] * x[j]
		}
		if math.Abs(float64(yh[i]-s)) > 1e-4 {
			t.Fatalf("head y[%d] = %v; want %v", i, yh[i], s)
		}
	}
	// An existing path is not replaced.
	err = model.Save(path, model.Tensors[float32]{Vectors: map[string][]float32{"b": {1}}}, safetensors.F32)
	if err == nil || !strings.HasPrefix(err.Error(), "lowrank: ") {
		t.Errorf("saving over an existing file: %v; want a lowrank: error", err)
	}
}

// Save refuses what it cannot write faithfully, and then leaves nothing.
func TestSaveErrors(t *testing.T) {
	W, _ := lowrank.NewMatrix(6, 5, gauss(rand.New(rand.NewPCG(3, 4)), 30, 1))
	f, err := lowrank.Factorize(W, lowrank.Rank(2))
	if err != nil {
		t.Fatal(err)
	}
	big := lowrank.Matrix[float64]{Rows: 1, Cols: 2, Data: []float64{1, 1e6}}
	for _, c := range []struct {
		name string
		t    model.Tensors[float64]
		dt   safetensors.DType
		kind error
		says string
	}{
		{"nothing", model.Tensors[float64]{}, safetensors.F32, lowrank.ErrEmpty, "no tensors"},
		{"a name twice", model.Tensors[float64]{Factors: map[string]*lowrank.Factors[float64]{"x": f}, Dense: map[string]lowrank.Matrix[float64]{"x.A": W}}, safetensors.F32, lowrank.ErrShape, `"x.A": written by`},
		{"a value F16 cannot hold", model.Tensors[float64]{Dense: map[string]lowrank.Matrix[float64]{"a": W, "z": big}}, safetensors.F16, lowrank.ErrNonFinite, "exceeds the range of F16"},
		{"a NaN bias", model.Tensors[float64]{Vectors: map[string][]float64{"b": {1, math.NaN()}}}, safetensors.F32, lowrank.ErrNonFinite, "expected finite values"},
		{"an integer dtype", model.Tensors[float64]{Vectors: map[string][]float64{"b": {1}}}, safetensors.I32, safetensors.ErrDType, "expected F16, BF16, F32 or F64"},
		{"an empty vector", model.Tensors[float64]{Vectors: map[string][]float64{"b": {}}}, safetensors.F32, lowrank.ErrShape, "expected a non-empty"},
	} {
		path := tmp(t, "bad.safetensors")
		err := model.Save(path, c.t, c.dt)
		if err == nil || !errors.Is(err, c.kind) || !strings.HasPrefix(err.Error(), "lowrank: ") || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v; want a lowrank: error wrapping %v saying %q", c.name, err, c.kind, c.says)
		}
		if exists(path) {
			t.Errorf("%s: a file was left at the path", c.name)
		}
	}
}
