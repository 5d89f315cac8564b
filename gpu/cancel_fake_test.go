//go:build cgo

package gpu_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/gpu"
	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/internal/testkit/fakecuda"
	"github.com/lowrank-go/lowrank/la"
)

// cancelling wraps the cuda backend so that a context is cancelled as the
// n-th matrix product starts.
type cancelling struct {
	*gpu.Backend
	mu     sync.Mutex
	gemms  int
	at     int
	cancel context.CancelFunc
}

func (b *cancelling) Float32() la.Engine[float32] {
	return &cancellingEngine{Engine: b.Backend.Float32(), b: b}
}

type cancellingEngine struct {
	la.Engine[float32]
	b *cancelling
}

func (e *cancellingEngine) Gemm(tA, tB bool, alpha float32, a, b la.Mat, beta float32, c la.Mat) error {
	e.b.mu.Lock()
	e.b.gemms++
	if e.b.gemms == e.b.at {
		e.b.cancel()
	}
	e.b.mu.Unlock()
	return e.Engine.Gemm(tA, tB, alpha, a, b, beta, c)
}

// TestFakeCancelFreesDeviceMemory cancels randomized factorizations on
// the cuda backend (over the fake) at every product in turn and checks
// that each returns context.Canceled with no device memory left behind;
// fakeGPU's cleanup checks the rest (no violation, nothing held).
func TestFakeCancelFreesDeviceMemory(t *testing.T) {
	b := fakeGPU(t, &fakecuda.Fake{})
	rng := rand.New(rand.NewPCG(1, 2))
	w, _ := lowrank.NewMatrix[float32](96, 80, nil)
	for i := range w.Data {
		w.Data[i] = float32(rng.NormFloat64())
	}
	base := cuda.LiveAllocations()
	for at := 1; at <= 4; at++ {
		ctx, cancel := context.WithCancel(context.Background())
		cb := &cancelling{Backend: b, at: at, cancel: cancel}
		f, err := lowrank.FactorizeContext(ctx, w, lowrank.Rank(4), lowrank.WithBackend(cb), lowrank.WithMethod(lowrank.Randomized), lowrank.WithPowerIters(1))
		cancel()
		if !errors.Is(err, context.Canceled) || f != nil {
			t.Fatalf("cancelled at product %d: %v", at, err)
		}
		if cb.gemms != at {
			t.Errorf("cancelled at product %d: %d products ran", at, cb.gemms)
		}
		if got := cuda.LiveAllocations(); got != base {
			t.Errorf("cancelled at product %d: %d device allocations live, want %d", at, got, base)
		}
	}
}
