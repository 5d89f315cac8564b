package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

// The memory budget: always on, for the whole process. It is --max-memory
// when given, and otherwise (--max-memory 0, the default) three quarters of
// what the process may really use: the smaller of its cgroup's memory limit
// (v2 memory.max, v1 memory.limit_in_bytes, the tightest along the path)
// and the system's MemAvailable (systemMemory; lowrank backends shows it).
// Running out is then a "lowrank:" line naming what did not fit and what
// it needed, never a runtime crash.
//
// What the program itself holds is taken from the budget first: a reserve
// for code, runtime and I/O buffers (reserveBytes), each input header as
// it is read (safetensors.HeaderMemory: a header whose reading would not
// fit is refused before it is read), perTensorBytes of bookkeeping per
// tensor, and adapter configs and their patterns.
//
// Before any work, every tensor gets an estimate of the memory it needs
// while it is processed (its values as float32 or float64, and the
// algorithm's work: lowrank.EstimateMemory for factorize and extract, the
// product for merge). The budget minus what the program needs for itself
// (reserveBytes plus a few times the size of the input headers) is shared
// by the tensors in flight: with --jobs N a tensor starts only when its
// estimate fits next to those already running, and holds it until its
// output is written. A tensor that cannot fit even alone is first given a
// cheaper method (the randomized SVD, with its sketch capped for --energy
// and --tol) and otherwise refused with an error naming it, its estimate
// and the budget, before any output is created. The Go runtime is also
// given the budget as its soft memory limit (debug.SetMemoryLimit), so
// that garbage is collected before the process grows past it.

// reserveBytes is what the budget keeps for the program itself: code,
// runtime, I/O buffers (1 MiB per reader and writer), the report.
const reserveBytes = 32 << 20

// unmanagedBytes is the part of reserveBytes the Go runtime's memory limit
// does not cover: code and data pages of the binary and its C libraries.
const unmanagedBytes = 16 << 20

// perTensorBytes is the bookkeeping the program keeps per tensor of its
// inputs (the tensor list and index, the plan, the table and report row).
const perTensorBytes = 640

// defaultShare is the part of the memory available that the default budget
// takes: num/den.
const defaultNum, defaultDen = 3, 4

// parseSize parses a memory size: a number with an optional unit, B, K,
// M, G, T (powers of 1024, as KiB, MiB, GiB, TiB) or KB, MB, GB, TB
// (powers of 1000), in any case, optionally separated by a space ("2GiB",
// "1.5g", "512 MB"). "0" means no limit.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[strings.ToLower(unit)]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || math.IsNaN(v) || v < 0 {
		return 0, fmt.Errorf("--max-memory %q; expected a size such as 512MiB, 2GiB or 1.5GB (0 for the default)", s)
	}
	b := v * mult
	if b >= 1<<62 {
		return 0, fmt.Errorf("--max-memory %q is larger than any machine's memory; expected a size such as 512MiB or 2GiB", s)
	}
	return int64(math.Ceil(b)), nil // a tiny size is not "the default"
}

// budget shares the memory budget between what the program holds and the
// tensors in flight.
type budget struct {
	total  int64  // the budget; 0: none (the system's memory is unknown)
	source string // says where total comes from, for messages
	// avail is what the tensors may use together: total less the
	// reserve and what take took.
	avail   int64
	mu      sync.Mutex
	used    int64
	changed chan struct{} // closed and replaced on every release
	restore func()
	// pool holds the free tensor buffers (pool.go), oldest first, and
	// pooled their bytes, which count against avail next to used.
	pool   []pooledBuf
	pooled int64
}

// newBudget starts the budget: maxMemory bytes, or the default when it is
// 0. It fails when the budget does not even hold the program itself.
func newBudget(maxMemory int64) (*budget, error) {
	b := &budget{total: maxMemory, source: "--max-memory " + humanBytes(maxMemory), changed: make(chan struct{}), restore: func() {}}
	if maxMemory == 0 {
		avail, how := systemMemory()
		if avail <= 0 {
			b.source = "no budget (" + how + ")"
			return b, nil // the system's memory is unknown: no default
		}
		b.total = avail / defaultDen * defaultNum
		b.source = fmt.Sprintf("the default memory budget %s (%d/%d of %s)", humanBytes(b.total), defaultNum, defaultDen, how)
	}
	if b.total <= reserveBytes {
		return nil, usagef("%s is below the %s the program needs for itself; expected more", b.source, humanBytes(reserveBytes))
	}
	b.avail = b.total - reserveBytes
	total := b.total
	setLimit(total)
	var once sync.Once
	b.restore = func() { once.Do(func() { setLimit(-total) }) }
	return b, nil
}

// take reserves n bytes of the budget for good (for what the program holds
// for the whole run), or fails naming what needs them.
func (b *budget) take(n int64, what string) error {
	if b.total == 0 {
		return nil
	}
	if n > b.avail {
		return fmt.Errorf("lowrank: %s needs about %s but %s leaves %s; expected a larger --max-memory", what, humanBytes(n), b.source, humanBytes(b.avail))
	}
	b.avail -= n
	return nil
}

// Take is take, for the model package (model.Budget): adapter configs and
// their pattern keys are charged to the command's budget.
func (b *budget) Take(n int64, what string) error { return b.take(n, what) }

// open opens a safetensors input within the budget: a header whose reading
// would not fit is refused before it is read, and the header and the
// bookkeeping for its tensors are then taken from the budget. SIGINT and
// SIGTERM stop the reading of a large header.
func (b *budget) open(path string) (*safetensors.File, error) {
	o := safetensors.OpenOptions{Context: cmdContext}
	if b.total > 0 {
		o.MaxMemory = b.avail
	}
	f, err := safetensors.OpenWith(path, o)
	switch {
	case err == nil:
	case cmdContext.Err() != nil:
		return nil, errInterrupted
	case errors.Is(err, safetensors.ErrMemory):
		return nil, fmt.Errorf("lowrank: %s: reading its header needs up to %s but %s leaves %s; expected a larger --max-memory", path, humanBytes(safetensors.HeaderMemory(headerLength(path))), b.source, humanBytes(b.avail))
	default:
		return nil, err
	}
	need := add(safetensors.HeaderMemory(f.HeaderSize()), mul(perTensorBytes, len(f.Tensors())))
	if err := b.take(need, fmt.Sprintf("%s: its header and %d tensors", path, len(f.Tensors()))); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// headerLength returns the header length a safetensors file declares (0
// when it cannot be read), for messages.
func headerLength(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var nb [8]byte
	if _, err := io.ReadFull(f, nb[:]); err != nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(nb[:]) & math.MaxInt64)
}

// The Go runtime's soft memory limit follows the budgets of the commands
// running in the process (one, from main; several in tests): their sum,
// less what the runtime does not count (the program's code and C
// libraries), so that the resident size stays under the budget. With no
// budget left, the limit in force before the first is restored.
var limits struct {
	sync.Mutex
	sum, saved int64
}

func setLimit(delta int64) {
	limits.Lock()
	defer limits.Unlock()
	if limits.sum == 0 {
		limits.saved = debug.SetMemoryLimit(-1)
	}
	limits.sum += delta
	if limits.sum == 0 {
		debug.SetMemoryLimit(limits.saved)
		return
	}
	debug.SetMemoryLimit(limits.sum - unmanagedBytes)
}

// fits reports whether a tensor needing n bytes can run at all.
func (b *budget) fits(n int64) bool { return b.total == 0 || n <= b.avail }

// acquire waits until n bytes are free and takes them. Buffers the pool
// holds are given up first, oldest first, for the room they take.
func (b *budget) acquire(ctx context.Context, n int64) error {
	if b == nil || b.total == 0 {
		return nil
	}
	for {
		b.mu.Lock()
		for len(b.pool) > 0 && b.used+b.pooled+n > b.avail {
			b.evictLocked()
		}
		if b.used+b.pooled+n <= b.avail {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives n bytes back.
func (b *budget) release(n int64) {
	if b == nil || b.total == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// elemBytes is the size of the values tensors of these dtypes are
// computed in: 8 when any is F64, else 4.
func elemBytes(dts ...safetensors.DType) int64 {
	if computesIn64(dts...) {
		return 8
	}
	return 4
}

// mul returns a·b·c, saturating instead of overflowing.
func mul(a int64, b ...int) int64 {
	for _, x := range b {
		if x != 0 && a > math.MaxInt64/int64(x) {
			return math.MaxInt64
		}
		a *= int64(x)
	}
	return a
}

func add(a ...int64) int64 {
	var s int64
	for _, x := range a {
		if s > math.MaxInt64-x {
			return math.MaxInt64
		}
		s += x
	}
	return s
}

// factorPlan is how one tensor is factorized within the budget.
type factorPlan struct {
	cost   int64            // bytes held while the tensor is processed
	opts   []lowrank.Option // appended to the command's options
	sketch int              // the sketch cap the budget imposes (0: none)
	need   int64            // the estimate without the budget's changes
}

// planFactorize decides how a d×k tensor with elements of es bytes is
// factorized within the budget; held is what the command holds besides
// the factorization's own work (the tensor itself, ΔW and the base for
// extract). It returns an error naming the tensor when nothing fits.
func planFactorize(b *budget, s *settings, file, tensor string, d, k int, es int64, held int64, extra ...lowrank.Option) (factorPlan, error) {
	est := func(opts ...lowrank.Option) (int64, error) {
		all := append(append(append([]lowrank.Option(nil), s.opts...), extra...), opts...)
		e, err := lowrank.EstimateMemory(d, k, int(es), s.policy, all...)
		return add(e.Bytes, held, es*64*int64(k)), err
	}
	cost, err := est()
	if err != nil {
		// The policy does not apply to this shape: the tensor is kept
		// dense, which needs only what is held.
		return factorPlan{cost: held}, nil
	}
	if b.fits(cost) {
		return factorPlan{cost: cost}, nil
	}
	refuse := func(n int64, how string) error {
		return tensorErr(file, tensor, "%d×%d needs about %s to factorize (%s) but %s leaves %s for tensors; expected a larger --max-memory%s",
			d, k, humanBytes(n), how, b.source, humanBytes(b.avail), s.budgetHint())
	}
	if s.method == lowrank.Exact {
		return factorPlan{}, refuse(cost, "exact SVD, as --method exact asks")
	}
	rnd := lowrank.WithMethod(lowrank.Randomized)
	if !s.adaptive() {
		c, err := est(rnd)
		if err == nil && b.fits(c) {
			return factorPlan{cost: c, opts: []lowrank.Option{rnd}, need: cost}, nil
		}
		return factorPlan{}, refuse(min(c, cost), "randomized SVD")
	}
	// Energy and tolerance: the largest sketch that fits. The target is
	// then checked when the tensor is computed.
	lo, hi := 0, min(d, k)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		c, err := est(rnd, lowrank.WithMaxSketch(mid))
		if err == nil && b.fits(c) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo < minSketch {
		c, _ := est(rnd, lowrank.WithMaxSketch(minSketch))
		return factorPlan{}, refuse(min(c, cost), fmt.Sprintf("%s needs the exact SVD or a randomized sketch of at least %d columns", s.policy, minSketch))
	}
	c, _ := est(rnd, lowrank.WithMaxSketch(lo))
	return factorPlan{cost: c, opts: []lowrank.Option{rnd, lowrank.WithMaxSketch(lo)}, sketch: lo, need: cost}, nil
}

// minSketch is the smallest sketch the budget may impose on an adaptive
// policy.
const minSketch = 16

func (s *settings) budgetHint() string {
	if s.adaptive() {
		return ", a --rank N policy (its randomized SVD needs memory for N columns only), or --include to leave the tensor out"
	}
	return " or --include to leave the tensor out"
}

// adaptive reports whether the rank policy is --energy or --tol.
func (s *settings) adaptive() bool {
	p := s.policy.String()
	return strings.HasPrefix(p, "energy=") || strings.HasPrefix(p, "tol=")
}

// capped reports whether err is the failure of a sketch the budget
// capped: the policy needed more columns than fit.
func (p factorPlan) capped(s *settings, err error) bool {
	return p.sketch > 0 && errors.Is(err, lowrank.ErrPolicy) && s.adaptive()
}

// budgetErr says that the policy needed more than the sketch the budget
// allowed.
func budgetErr(s *settings, p factorPlan) string {
	return fmt.Sprintf("%s needs more than the %d sketch columns that fit in the %s %s leaves for tensors (without that cap it needs about %s); expected a larger --max-memory, a --rank N policy or --include to leave the tensor out",
		s.policy, p.sketch, humanBytes(s.mem.avail), s.mem.source, humanBytes(p.need))
}

// hugePageMin is the size from which a fresh buffer is given to the
// kernel's transparent huge pages (hugePages, Linux only).
const hugePageMin = 4 << 20

// prewarmBytes is how much of the Go heap factorize faults in before its
// work.
const prewarmBytes = 64 << 20

// prewarm faults in prewarmBytes of the heap up front, for an input of at
// least that size and a budget with room for it. A fresh process's heap
// grows into fresh memory until its first collections, and each fresh
// 4 KiB page costs a fault — ≈ 15 µs on the virtual machines we measured
// on, 14 000 of them (a fifth of the wall time) for `factorize --rank 64`
// of a 256 MiB model, most in the factorizations' temporaries. 64 MiB
// faulted in on huge pages costs 32 faults; freed again, they serve those
// temporaries: 3 500–4 300 faults, 11–14% less wall time
// (docs/performance.md).
func prewarm(b *budget, input int64) {
	if prewarmWanted(b, input) {
		prewarmHeap(prewarmBytes)
	}
}

// prewarmWanted: an input of at least prewarmBytes (a smaller one makes few
// faults), and a budget (if known) of at least 8 times that.
func prewarmWanted(b *budget, input int64) bool {
	return input >= prewarmBytes && (b == nil || b.total == 0 || b.avail/8 >= prewarmBytes)
}
