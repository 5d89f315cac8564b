package lowrank

import (
	"errors"
	"strings"
	"testing"

	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/la"
)

// absentGPU is a backend whose hardware is absent: it counts its Inits.
type absentGPU struct {
	absent bool
	inits  int
	err    error
}

func (g *absentGPU) Name() string                { return "cuda" }
func (g *absentGPU) Init() error                 { g.inits++; return g.err }
func (g *absentGPU) Describe() []string          { return nil }
func (g *absentGPU) Float32() la.Engine[float32] { return nil }
func (g *absentGPU) Float64() la.Engine[float64] { return nil }
func (g *absentGPU) Absent() (string, bool)      { return "no NVIDIA GPU here", g.absent }

// TestAutoChoiceSkipsAbsentGPU checks that the automatic choice passes over
// a backend whose hardware is certainly absent without initializing it, and
// that its reason is then Init's own, computed when asked for.
func TestAutoChoiceSkipsAbsentGPU(t *testing.T) {
	saved := backends
	defer func() { backends = saved }()
	c := cpu.New()
	for _, tc := range []struct {
		name       string
		g          *absentGPU
		wantInits  int // before the reason is asked
		wantReason string
	}{
		{"absent", &absentGPU{absent: true, err: errors.New("cuInit: CUDA_ERROR_NO_DEVICE")}, 0, "cuda: cuInit: CUDA_ERROR_NO_DEVICE"},
		{"absent, yet Init succeeds", &absentGPU{absent: true}, 0, "cuda: no NVIDIA GPU here"},
		{"cannot tell", &absentGPU{err: errors.New("cuInit: CUDA_ERROR_NO_DEVICE")}, 1, "cuda: cuInit: CUDA_ERROR_NO_DEVICE"},
	} {
		backends = func() []Backend { return []Backend{tc.g, c} }
		b, why := autoBackend()
		if b != Backend(c) {
			t.Errorf("%s: auto chose %v; want cpu", tc.name, b.Name())
		}
		if tc.g.inits != tc.wantInits {
			t.Errorf("%s: %d Inits before the reason was asked; want %d", tc.name, tc.g.inits, tc.wantInits)
		}
		if r := why(); r != tc.wantReason {
			t.Errorf("%s: reason %q; want %q", tc.name, r, tc.wantReason)
		}
		if !strings.HasPrefix(why(), "cuda: ") {
			t.Errorf("%s: reason %q; want it to name the backend", tc.name, why())
		}
	}
}
