package model

import (
	"slices"
	"sync"
	"unsafe"

	"github.com/lowrank-go/lowrank"
)

// LoRALayer is one module of an adapter, computing in T:
//
//	Δy = scale·B·(A·x)
//
// with A (r×k) and B (d×r) as the adapter stores them and scale its
// scaling (AdapterModule.Scale). It is applied with a base layer by
// Layer.ForwardAdapter, never merged into the base: one base serves any
// number of adapters. Get one with Adapter.LoRA (float32) or
// Adapter.LoRA64 (float64); the matrices are converted as Layer's are.
type LoRALayer[T lowrank.Float] struct {
	ad      *Adapter
	mod     AdapterModule
	factors *lowrank.Factors[T]
	scale   T
}

// LoRA is a LoRA layer computing in float32: Adapter.LoRA returns one.
type LoRA = LoRALayer[float32]

// LoRA64 is a LoRA layer computing in float64: Adapter.LoRA64 returns one.
type LoRA64 = LoRALayer[float64]

// LoRA returns the adapter's layer for the base module name, computing in
// float32, reading its matrices on the first call for that name. It
// returns an error wrapping ErrNotFound for a module the adapter does not
// change, and lowrank.ErrNonFinite for a NaN or ±Inf in A or B.
func (ad *Adapter) LoRA(module string) (*LoRA, error) { return loraOf[float32](ad, module) }

// LoRA64 is LoRA computing in float64.
func (ad *Adapter) LoRA64(module string) (*LoRA64, error) { return loraOf[float64](ad, module) }

type loraSlot[T lowrank.Float] struct {
	mu sync.Mutex
	l  *LoRALayer[T]
}

func (s *loraSlot[T]) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l == nil {
		return nil
	}
	return s.l.factors.Close()
}

func loraOf[T lowrank.Float](ad *Adapter, module string) (*LoRALayer[T], error) {
	if ad.closed.Load() {
		return nil, fileErr(ErrClosed, ad.path, "adapter used after Close")
	}
	if !ad.checked {
		return nil, fileErr(ErrUnsupported, ad.path, "opened by InspectAdapter, which does not check the matrices; expected OpenAdapterWith to apply it")
	}
	am, ok := ad.Module(module)
	if !ok {
		return nil, fileErr(ErrNotFound, ad.path, "no LoRA for module %q; the adapter changes %d modules", module, len(ad.mods))
	}
	if am.Embedding {
		return nil, fileErr(ErrUnsupported, ad.path, "module %q is an embedding LoRA (lora_embedding_A/B), which changes a lookup table, not a linear layer; expected it merged (lowrank merge) instead of applied by ForwardAdapter", module)
	}
	key := layerKey{module, is64[T]()}
	ad.mu.Lock()
	s, _ := ad.loras[key].(*loraSlot[T])
	if s == nil {
		s = &loraSlot[T]{}
		ad.loras[key] = s
	}
	ad.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l != nil {
		return s.l, nil
	}
	a, err := readMatrix[T](ad.file, am.A)
	if err != nil {
		return nil, err
	}
	b, err := readMatrix[T](ad.file, am.B)
	if err != nil {
		return nil, err
	}
	f, err := lowrank.NewFactors(b, a)
	if err != nil {
		return nil, wrap(ErrFormat, err, "%s: module %q", ad.file.Path(), module)
	}
	f.Backend = ad.backend
	s.l = &LoRALayer[T]{ad: ad, mod: am, factors: f, scale: T(am.Scale)}
	return s.l, nil
}

// Module returns what the adapter says of the layer's module: names,
// rank, scaling.
func (l *LoRALayer[T]) Module() AdapterModule { return l.mod }

// Adapter returns the adapter the layer belongs to.
func (l *LoRALayer[T]) Adapter() *Adapter { return l.ad }

// Dims returns the shape d×k of B·A.
func (l *LoRALayer[T]) Dims() (d, k int) {
	if l.factors == nil {
		return 0, 0
	}
	return l.factors.Dims()
}

// Rank returns r.
func (l *LoRALayer[T]) Rank() int {
	if l.factors == nil {
		return 0
	}
	return l.factors.Rank
}

// Scale returns the scaling of B·A.
func (l *LoRALayer[T]) Scale() float64 { return l.mod.Scale }

// Factors returns B and A (unscaled) as lowrank.Factors. They must not be
// modified.
func (l *LoRALayer[T]) Factors() *lowrank.Factors[T] { return l.factors }

// unaliased returns v, or a copy of it when it shares memory with y.
func unaliased[T lowrank.Float](y, v []T) []T {
	if len(y) == 0 || len(v) == 0 {
		return v
	}
	size := unsafe.Sizeof(y[0])
	y0, v0 := uintptr(unsafe.Pointer(unsafe.SliceData(y))), uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	if v0 < y0+uintptr(len(y))*size && y0 < v0+uintptr(len(v))*size {
		return slices.Clone(v)
	}
	return v
}

// fit checks that l can be applied with the base layer b.
func (l *LoRALayer[T]) fit(b *Layer[T]) error {
	if err := b.live(); err != nil {
		return err
	}
	if l.ad == nil || l.factors == nil {
		return errorf(ErrNotFound, "a zero LoRA layer; expected one from Adapter.LoRA or Adapter.LoRA64")
	}
	if l.ad.closed.Load() {
		return fileErr(ErrClosed, l.ad.path, "adapter used after Close")
	}
	if li := (LayerInfo{Weight: b.weight, D: b.d, K: b.k, Kernel: b.kernel}); !l.mod.fitsLayer(li) {
		return l.ad.mismatch(l.mod, li)
	}
	if l.mod.Kernel == nil && b.kernel == nil && l.ad.FanInFanOut() != b.m.opts.FanInFanOut {
		return l.ad.fanMismatch(l.mod.Module, b.m.opts.FanInFanOut)
	}
	return nil
}

// ForwardAdapter computes, for one input x of length k, the base layer
// and the adapter's change without merging them:
//
//	y = W·x + b + scale·B·(A·x)
//
// into y (length d). ad may be nil (the base alone, as Forward). ad is
// chosen per call, so that many goroutines serve many adapters from one
// base. It returns an error wrapping ErrMismatch (and lowrank.ErrShape)
// for an adapter whose B·A is not the layer's shape or whose
// fan_in_fan_out differs from the base's, and Forward's errors. y may be x
// itself (a square layer applied in place).
func (l *Layer[T]) ForwardAdapter(y, x []T, ad *LoRALayer[T]) error {
	if ad == nil {
		return l.Forward(y, x)
	}
	if err := ad.fit(l); err != nil {
		return err
	}
	x = unaliased(y, x) // the base writes y before the adapter reads x
	if err := l.Forward(y, x); err != nil {
		return err
	}
	t := make([]T, l.d)
	if err := ad.factors.ApplyTo(t, x, nil); err != nil {
		return l.fail(err)
	}
	for i, v := range t {
		y[i] += ad.scale * v
	}
	return nil
}

// ForwardBatchAdapters computes ForwardAdapter for the n inputs held as
// the rows of x (n×k) into the rows of y (n×d), each row with its own
// adapter: row i uses ads[i] (nil: the base alone), or ads[0] for every
// row when len(ads) == 1. The base runs once over the whole batch; the
// rows are then gathered by adapter and each adapter runs once over its
// rows (the way multi-LoRA servers batch requests):
//
//	Y = X·Wᵀ + b;  for each adapter a:  Y[rows of a] += scale_a·X[rows of a]·A_aᵀ·B_aᵀ
func (l *Layer[T]) ForwardBatchAdapters(y, x lowrank.Matrix[T], ads []*LoRALayer[T]) error {
	if err := l.live(); err != nil {
		return err
	}
	if len(ads) != 1 && len(ads) != x.Rows {
		return l.fail(errorf(lowrank.ErrShape, "%d adapters for %d rows; expected one per row of x, or one for all", len(ads), x.Rows))
	}
	// Group the rows by adapter, in order of first appearance.
	var order []*LoRALayer[T]
	rows := map[*LoRALayer[T]][]int{}
	for i := range x.Rows {
		a := ads[0]
		if len(ads) > 1 {
			a = ads[i]
		}
		if a == nil {
			continue
		}
		if _, seen := rows[a]; !seen {
			if err := a.fit(l); err != nil {
				return err
			}
			order = append(order, a)
		}
		rows[a] = append(rows[a], i)
	}
	if len(order) > 0 { // the base writes y before the adapters read x
		x.Data = unaliased(y.Data, x.Data)
	}
	if err := l.ForwardBatch(y, x); err != nil {
		return err
	}
	for _, a := range order {
		rs := rows[a]
		xg := x
		if len(rs) != x.Rows {
			xg = lowrank.Matrix[T]{Rows: len(rs), Cols: x.Cols, Data: make([]T, len(rs)*x.Cols)}
			for gi, r := range rs {
				copy(xg.Row(gi), x.Row(r))
			}
		}
		t, err := a.factors.ApplyBatch(xg, nil)
		if err != nil {
			return l.fail(err)
		}
		for gi, r := range rs {
			yr := y.Row(r)
			for j, v := range t.Row(gi) {
				yr[j] += a.scale * v
			}
		}
	}
	return nil
}
