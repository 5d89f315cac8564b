package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/gpu"
	"github.com/lowrank-go/lowrank/internal/cuda"
)

// deviceLoader opens the CUDA libraries of --devices (nil: dlopen); tests
// set the fake CUDA of internal/testkit/fakecuda.
var deviceLoader cuda.Loader

// addDevicesFlag adds --devices.
func addDevicesFlag(fs *flag.FlagSet) *string {
	return fs.String("devices", "", "GPUs to use at once: `all` or ordinals such as 0,1 (after CUDA_VISIBLE_DEVICES); one worker per GPU, each with its own context thread, stream and handles, taking the next tensor when free; a GPU that fails is reported and left out, and its tensor redone on another (the run fails when none is left). CPU runs use --jobs")
}

// device is one GPU of --devices.
type device struct {
	b    *gpu.Backend
	name string // "cuda:N"
}

// devicePool deals tensors to the GPUs of --devices: each tensor runs on a
// free device; a device whose run fails with a CUDA error is retired (and
// reported) and the tensor is run again on another. When every device has
// failed, the run fails, naming each failure.
type devicePool struct {
	mu       sync.Mutex
	cond     *sync.Cond
	free     []*device
	all      []*device
	alive    int
	failures []string
	stderr   io.Writer
	done     map[string]int // tensors each device finished
}

// openDevices parses --devices and opens the devices.
func openDevices(cmd, spec string, stderr io.Writer) (*devicePool, error) {
	var ordinals []int
	if spec != "all" {
		seen := map[int]bool{}
		for _, f := range strings.Split(spec, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 || seen[n] {
				return nil, usagef("%s: --devices %q; expected all, or distinct device ordinals ≥ 0 such as 0,1", cmd, spec)
			}
			seen[n] = true
			ordinals = append(ordinals, n)
		}
	}
	p := &devicePool{stderr: stderr, done: map[string]int{}}
	p.cond = sync.NewCond(&p.mu)
	open := func(n int) error {
		b := gpu.NewDeviceWith(n, deviceLoader)
		if err := b.Init(); err != nil {
			b.Close()
			return fmt.Errorf("lowrank: --devices %s: device %d: %s; expected usable CUDA devices (lowrank backends shows why not)", spec, n, strip(err))
		}
		d := &device{b: b, name: "cuda:" + strconv.Itoa(n)}
		p.all = append(p.all, d)
		p.free = append(p.free, d)
		return nil
	}
	if ordinals == nil { // all
		if err := open(0); err != nil {
			return nil, err
		}
		for n := 1; n < p.all[0].b.Devices(); n++ {
			ordinals = append(ordinals, n)
		}
	}
	for _, n := range ordinals {
		if err := open(n); err != nil {
			p.close()
			return nil, err
		}
	}
	p.alive = len(p.all)
	return p, nil
}

// close releases every device.
func (p *devicePool) close() {
	for _, d := range p.all {
		d.b.Close()
	}
}

// run runs f on a free device, again on another when the device fails.
func (p *devicePool) run(tensor string, f func(b lowrank.Backend) (outcome, error)) (outcome, error) {
	return runOnDevice(p, tensor, f)
}

// runOnDevice is devicePool.run for any result.
func runOnDevice[R any](p *devicePool, tensor string, f func(b lowrank.Backend) (R, error)) (R, error) {
	var zero R
	for {
		d, err := p.get()
		if err != nil {
			return zero, err
		}
		o, err := f(d.b)
		if err != nil && deviceFailed(err) && !errors.Is(err, errInterrupted) && cmdContext.Err() == nil {
			p.retire(d, tensor, err)
			continue
		}
		if err == nil {
			p.mu.Lock()
			p.done[d.name]++
			p.mu.Unlock()
		}
		p.put(d)
		return o, err
	}
}

// summary says how many tensors each device did: "cuda:0 4, cuda:1 5".
func (p *devicePool) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for _, d := range p.all {
		parts = append(parts, fmt.Sprintf("%s %d", d.name, p.done[d.name]))
	}
	return strings.Join(parts, ", ")
}

// get waits for a free device; it fails when none is left.
func (p *devicePool) get() (*device, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.free) == 0 && p.alive > 0 {
		p.cond.Wait()
	}
	if p.alive == 0 {
		return nil, fmt.Errorf("lowrank: every device of --devices failed (%s); expected a working GPU (run on the others with --devices, or --backend cpu)", strings.Join(p.failures, "; "))
	}
	d := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return d, nil
}

func (p *devicePool) put(d *device) {
	p.mu.Lock()
	p.free = append(p.free, d)
	p.mu.Unlock()
	p.cond.Signal()
}

// retire leaves d out for the rest of the run.
func (p *devicePool) retire(d *device, tensor string, err error) {
	p.mu.Lock()
	p.alive--
	msg := fmt.Sprintf("%s failed on %q: %s", d.name, tensor, strings.ReplaceAll(strip(err), "\n", " "))
	p.failures = append(p.failures, msg)
	left := p.alive
	p.mu.Unlock()
	p.cond.Broadcast()
	if p.stderr != nil && left > 0 {
		fmt.Fprintf(p.stderr, "lowrank: warning: %s; it is left out, the tensor is redone on another (devices left: %d)\n", msg, left)
	}
}

// deviceFailed reports whether err comes from a CUDA call or a lost
// context (not from the input).
func deviceFailed(err error) bool {
	var ce *cuda.Error
	var le *cuda.LostError
	return errors.As(err, &ce) || errors.As(err, &le) || errors.Is(err, cuda.ErrClosed)
}

// checkDevicesFlags refuses --devices with --jobs (the devices set how
// many tensors run at once) or with --backend cpu.
func checkDevicesFlags(cmd string, fs *flag.FlagSet, spec string) error {
	if spec == "" {
		return nil
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		switch {
		case err != nil:
		case f.Name == "jobs":
			err = usagef("%s: --devices %s with --jobs %s; expected one of them (--devices runs one tensor per GPU at once; --jobs is for CPU runs)", cmd, spec, f.Value)
		case f.Name == "backend" && f.Value.String() != "cuda" && f.Value.String() != "auto":
			err = usagef("%s: --devices %s with --backend %s; expected --backend cuda or auto", cmd, spec, f.Value)
		}
	})
	return err
}

// on returns p running on backend b.
func (p factorPlan) on(b lowrank.Backend) factorPlan {
	p.opts = append(p.opts[:len(p.opts):len(p.opts)], lowrank.WithBackend(b))
	return p
}
