package model_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// What Writer writes reads back through Open as it was added: factors,
// their record, tensors kept dense with the reason, the kept metadata.
func TestWriterRoundTrip(t *testing.T) {
	path := tmp(t, "out.safetensors")
	w, err := model.CreateWith(path, model.WriterOptions{Metadata: map[string]string{"source": "test", "lowrank": "replaced"}})
	if err != nil {
		t.Fatal(err)
	}
	W, _ := lowrank.NewMatrix(8, 6, []float64{
		1, 2, 3, 4, 5, 6, 2, 4, 6, 8, 10, 12, 1, 0, 1, 0, 1, 0, 3, 3, 3, 3, 3, 3,
		0, 1, 0, 1, 0, 1, 5, 4, 3, 2, 1, 0, 1, 1, 2, 3, 5, 8, 2, 7, 1, 8, 2, 8})
	f, err := lowrank.Factorize(W, lowrank.Energy(0.9), lowrank.WithSplit(lowrank.SplitSqrt))
	if err != nil {
		t.Fatal(err)
	}
	if err := model.AddFactors(w, "l.weight", f, safetensors.F64); err != nil {
		t.Fatal(err)
	}
	if err := model.AddDense(w, "k.weight", W, safetensors.F16); err != nil {
		t.Fatal(err)
	}
	w.MarkDense("k.weight", "because")
	bias := make([]byte, 4*8)
	for i := range 8 {
		binary.LittleEndian.PutUint32(bias[4*i:], math.Float32bits(float32(i+1)))
	}
	if err := w.CopyFrom("k.bias", safetensors.F32, []int{8}, bytes.NewReader(bias)); err != nil {
		t.Fatal(err)
	}
	if exists(path) {
		t.Fatal("the file appeared before Close")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	md := m.Recorded()
	if md == nil || md.Policy != "energy=0.9" || md.Split != "sqrt" || md.Dense["k.weight"] != "because" || m.Metadata()["source"] != "test" {
		t.Fatalf("metadata %+v %v", md, m.Metadata())
	}
	rec := md.Tensors["l.weight"]
	if rec.Rank != f.Rank || rec.RelError != f.RelError || rec.Energy != f.Energy || rec.DType != "F64" || rec.Shape[0] != 8 || rec.Shape[1] != 6 {
		t.Errorf("record %+v; factors rank %d error %v energy %v", rec, f.Rank, f.RelError, f.Energy)
	}
	l, _ := m.Linear64("l")
	if l.Rank() != f.Rank || l.Factors().RelError != f.RelError {
		t.Errorf("read back rank %d error %v", l.Rank(), l.Factors().RelError)
	}
	k, err := m.Linear("k")
	if err != nil {
		t.Fatal(err)
	}
	y := make([]float32, 8)
	if err := k.Forward(y, []float32{1, 0, 0, 0, 0, 0}); err != nil || y[0] != 2 || y[1] != 4 || y[7] != 10 {
		t.Errorf("dense k with its bias: %v %v", y, err)
	}
}

// Writer refuses what it cannot write faithfully, before writing it;
// Abort and a failed Close leave nothing at the path.
func TestWriterErrors(t *testing.T) {
	path := tmp(t, "out.safetensors")
	w, err := model.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	big, _ := lowrank.NewMatrix(1, 2, []float32{1, 1e6})
	a, _ := lowrank.NewMatrix(1, 2, []float32{1, 1})
	b, _ := lowrank.NewMatrix(2, 1, []float32{1e6, 1})
	f, _ := lowrank.NewFactors(b, a)
	if err := model.AddFactors(w, "f", f, safetensors.F32); !errors.Is(err, lowrank.ErrNonFinite) || !strings.Contains(err.Error(), "expected known values") {
		t.Errorf("NaN recorded error: %v", err)
	}
	f.SetRecorded(0, 1)
	if err := model.AddFactors(w, "f", f, safetensors.F16); !errors.Is(err, lowrank.ErrNonFinite) || !strings.Contains(err.Error(), `tensor "f.B": element [0, 0] = 1e+06 exceeds the range of F16`) {
		t.Errorf("F16 overflow: %v", err)
	}
	if err := model.AddDense(w, "d", big, safetensors.F16); !errors.Is(err, lowrank.ErrNonFinite) {
		t.Errorf("F16 overflow of a dense tensor: %v", err)
	}
	if err := model.AddDense(w, "d", big, safetensors.I32); !errors.Is(err, safetensors.ErrDType) {
		t.Errorf("integer dtype: %v", err)
	}
	if err := model.AddFactors[float32](w, "n", nil, safetensors.F32); !errors.Is(err, lowrank.ErrEmpty) {
		t.Errorf("nil factors: %v", err)
	}
	nan, _ := lowrank.NewMatrix(1, 2, []float32{float32(math.NaN()), 1})
	if err := model.AddDense(w, "d", nan, safetensors.F32); !errors.Is(err, lowrank.ErrNonFinite) {
		t.Errorf("NaN: %v", err)
	}
	if err := model.AddFactors(w, "f", f, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	if err := model.AddDense(w, "f.A", big, safetensors.F32); err == nil {
		t.Error("a name written twice was accepted")
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(strings.TrimSuffix(path, "out.safetensors")); len(entries) != 0 {
		t.Errorf("Abort left %d files", len(entries))
	}
	os.WriteFile(path, []byte("mine"), 0o644)
	if _, err := model.Create(path); !errors.Is(err, safetensors.ErrExists) {
		t.Errorf("Create over an existing file: %v", err)
	}
}
