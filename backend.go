package lowrank

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/lowrank-go/lowrank/cpu"
	"github.com/lowrank-go/lowrank/gpu"
	"github.com/lowrank-go/lowrank/internal/sched"
	"github.com/lowrank-go/lowrank/la"
)

// Backend computes lowrank's linear algebra on one kind of hardware. The
// interface uses only plain Go types and the leaf package la, so that
// implementations (lowrank/cpu, lowrank/gpu) satisfy it without importing
// this package.
type Backend interface {
	// Name is the backend's short name: "cpu" or "cuda".
	Name() string
	// Init prepares the backend on first use (loading libraries, finding
	// a device) and returns why it cannot run, or nil. It is safe to call
	// many times; the answer does not change.
	Init() error
	// Describe lists what the backend runs on (device, library versions
	// and paths), one fact per line, once Init has succeeded.
	Describe() []string
	// Float32 and Float64 return the typed engines.
	Float32() la.Engine[float32]
	Float64() la.Engine[float64]
}

var (
	_ Backend = (*cpu.Backend)(nil)
	_ Backend = (*gpu.Backend)(nil)
)

// BackendEnv is the environment variable that overrides the run-time
// choice: "auto" (the default), "cpu" or "cuda".
const BackendEnv = "LOWRANK_BACKEND"

// backends returns every backend, in order of preference: cuda, then cpu.
// The list is built on first use, never in init(): importing lowrank loads
// no library and touches no device.
var backends = sync.OnceValue(func() []Backend { return []Backend{gpu.New(), cpu.New()} })

// BackendInfo describes one backend for Backends.
type BackendInfo struct {
	Name      string
	Available bool
	// Reason says why the backend is not available ("libcuda.so.1 not
	// found: no NVIDIA driver visible ..."); empty when it is.
	Reason string
	// Details lists what an available backend runs on.
	Details []string
	// Default marks the backend the default choice resolves to.
	Default bool
}

// Backends reports every backend lowrank knows, in order of preference,
// whether it can run here and, if not, why. It initializes each backend.
func Backends() []BackendInfo {
	def, _ := DefaultBackend()
	var out []BackendInfo
	for _, b := range backends() {
		info := BackendInfo{Name: b.Name(), Default: def == b}
		if err := b.Init(); err != nil {
			info.Reason = err.Error()
		} else {
			info.Available = true
			info.Details = b.Describe()
		}
		out = append(out, info)
	}
	return out
}

// LookupBackend returns the backend called name ("cpu" or "cuda"), or an
// error wrapping ErrBackend that says why it cannot run. "auto" returns
// the automatic choice.
func LookupBackend(name string) (Backend, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "auto" || name == "" {
		b, _ := autoBackend()
		return b, nil
	}
	for _, b := range backends() {
		if b.Name() == name {
			if err := b.Init(); err != nil {
				return nil, errorf(ErrBackend, "backend %s: %v", name, err)
			}
			return b, nil
		}
	}
	return nil, errorf(ErrBackend, "unknown backend %q; expected auto, cpu or cuda", name)
}

// absenter is a backend that can tell cheaply, without initializing, that
// its hardware is certainly absent (gpu.Backend.Absent).
type absenter interface{ Absent() (string, bool) }

// autoBackend returns the first backend that can run, and the reasons the
// ones before it could not. A backend whose hardware is certainly absent
// (absenter) is passed over without Init, so that a machine without a GPU
// does not pay for the driver's start-up on every run; its reason is
// then Init's, computed only when it is asked for (autoReason).
func autoBackend() (Backend, func() string) {
	type passed struct {
		b      Backend
		reason string // Init's error, or why it is absent
		absent bool   // not initialized: Init's error is asked later
	}
	var why []passed
	reason := func() string {
		var s []string
		for _, p := range why {
			r := p.reason
			if p.absent {
				if err := p.b.Init(); err != nil {
					r = err.Error()
				}
			}
			s = append(s, p.b.Name()+": "+r)
		}
		return strings.Join(s, "; ")
	}
	for _, b := range backends() {
		if a, ok := b.(absenter); ok {
			if r, absent := a.Absent(); absent {
				why = append(why, passed{b, r, true})
				continue
			}
		}
		if err := b.Init(); err != nil {
			why = append(why, passed{b, err.Error(), false})
			continue
		}
		return b, reason
	}
	// Unreachable: the CPU backend always initializes.
	return cpu.New(), reason
}

// DefaultBackend returns the backend used when no WithBackend option is
// given. It is chosen once, on first use: LOWRANK_BACKEND=cpu or cuda
// forces one (and cuda fails with the reason when no usable GPU is
// present); unset or "auto" takes cuda when a usable device exists and the
// CPU otherwise.
func DefaultBackend() (Backend, error) {
	c := defaultChoice()
	return c.backend, c.err
}

// choice is the default backend, chosen once.
type choice struct {
	backend Backend
	err     error
	// autoReason says why auto passed over the backends it prefers; nil
	// when auto did not choose.
	autoReason func() string
}

var defaultChoice = sync.OnceValue(func() (c choice) {
	name := os.Getenv(BackendEnv)
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "auto":
		b, why := autoBackend()
		c.backend, c.autoReason = b, sync.OnceValue(why)
	case "cpu", "cuda":
		c.backend, c.err = LookupBackend(name)
	default:
		c.err = errorf(ErrBackend, "%s=%q; expected auto, cpu or cuda", BackendEnv, name)
	}
	return c
})

// AutoReason returns why the automatic choice passed over the backends it
// prefers (for instance why the GPU was not used), or "". A GPU backend the
// choice passed over without loading its driver, because the machine has
// no NVIDIA device, is initialized now to give the driver's own reason.
func AutoReason() string {
	if r := defaultChoice().autoReason; r != nil {
		return r()
	}
	return ""
}

// backendFor returns the backend a call with config c runs on.
func (c *config) backendFor() (Backend, error) {
	if c.backend != nil {
		if err := c.backend.Init(); err != nil {
			return nil, errorf(ErrBackend, "backend %s: %v", c.backend.Name(), err)
		}
		return c.backend, nil
	}
	return DefaultBackend()
}

// engineOf returns b's engine for T.
func engineOf[T Float](b Backend) la.Engine[T] {
	var z T
	if _, ok := any(z).(float32); ok {
		return any(b.Float32()).(la.Engine[T])
	}
	return any(b.Float64()).(la.Engine[T])
}

// cpuBackend returns the registered CPU backend.
func cpuBackend() Backend {
	for _, b := range backends() {
		if b.Name() == "cpu" {
			return b
		}
	}
	return cpu.New()
}

// onCPUIfOutOfMemory runs run on b and, when b is not the CPU backend and
// run failed because the device ran out of memory (la.ErrDeviceMemory),
// logs why ("lowrank: " + what, with the shape) and runs it again on the
// CPU backend. It returns run's result, the backend that produced it and,
// after a fallback, the reason to record ("" otherwise). Factorize, SVD and
// the first Apply all fall back through it.
func onCPUIfOutOfMemory[R any](b Backend, what, shape string, run func(Backend) (R, error)) (R, Backend, string, error) {
	res, err := runOn(b, run)
	if _, onCPU := b.(*cpu.Backend); err == nil || onCPU || !errors.Is(err, la.ErrDeviceMemory) {
		return res, b, "", err
	}
	why := fmt.Sprintf("%s ran out of memory (%v); computed on the CPU", b.Name(), err)
	logger().Warn("lowrank: "+what, "backend", b.Name(), "shape", shape, "reason", err)
	c := cpuBackend()
	res, err = runOn(c, run)
	return res, c, why, err
}

// runOn runs run on b. On the CPU backend the run is registered as one
// job with the library's thread budget (internal/sched) while it lasts,
// so that concurrent factorizations share the cores one each instead of
// taking turns on all of them (see the package documentation).
func runOn[R any](b Backend, run func(Backend) (R, error)) (R, error) {
	if _, onCPU := b.(*cpu.Backend); onCPU {
		sched.Default.Join()
		defer sched.Default.Leave()
	}
	return run(b)
}
