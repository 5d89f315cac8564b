package cpu_test

import (
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/internal/testkit/testla"
	"github.com/lowrank-go/lowrank/la"
)

func TestGemmPrecision(t *testing.T) {
	for _, b := range []*cpu.Backend{cpu.New(), cpu.NewGonum()} {
		t.Run(b.Describe()[0], func(t *testing.T) {
			testla.PrecisionGemmTest(t, b.Float32(), !testing.Short())
		})
	}
}

func TestGemmPrecisionFloat64(t *testing.T) {
	e := cpu.New().Float64()
	pg, ok := e.(la.PrecisionGemmer[float64])
	if !ok {
		t.Fatal("the float64 engine does not implement la.PrecisionGemmer")
	}
	a, _ := e.Upload(2, 2, []float64{1, 2, 3, 4})
	c, _ := e.Zeros(2, 2)
	if err := pg.GemmPrecision(la.F32, false, false, 1, a, a, 0, c); err != nil {
		t.Fatalf("F32 on float64: %v", err)
	}
	err := pg.GemmPrecision(la.TF32, false, false, 1, a, a, 0, c)
	if err == nil || !strings.Contains(err.Error(), "float32") {
		t.Fatalf("TF32 on float64: %v; want an error asking for float32", err)
	}
}
