package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/cpu"
)

// The concurrency mode (-concurrency) measures throughput with many
// callers, the way a Go service uses the library: applies per second of
// one shared rank-64 4096² float32 Factors (one vector per call) from 1, 8
// and 64 goroutines, and factorizations per second of independent 1024²
// float32 matrices at rank 32 (Auto: randomized) from 1, 2 and 4 callers,
// on the default CPU backend (the system BLAS) and on the pure-Go path.
// Each configuration runs for a fixed time, rounds alternate between
// configurations, and the table gives the median round and the ratio to
// one caller. It needs no Python.

type concCase struct {
	path, what string
	callers    int
}

func runConcurrency(out string, rounds int, dur time.Duration, quick bool) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	sys, err := lowrank.LookupBackend("cpu")
	if err != nil {
		return err
	}
	backends := map[string]lowrank.Backend{ours: sys, oursGonum: cpu.NewGonum()}
	d, k, r := 4096, 4096, 64
	fd, fr := 1024, 32
	if quick {
		d, k, fd = 1024, 1024, 256
	}
	rng := newRand(11)
	mk := func(rows, cols int) lowrank.Matrix[float32] {
		m, _ := lowrank.NewMatrix(rows, cols, rng.f32(rows*cols))
		return m
	}
	shared := map[string]*lowrank.Factors[float32]{}
	for name, b := range backends {
		f, err := lowrank.NewFactors(mk(d, r), mk(r, k))
		if err != nil {
			return err
		}
		f.Backend = b
		shared[name] = f
	}
	bias := rng.f32(d)
	ws := make([]lowrank.Matrix[float32], 4)
	for i := range ws {
		ws[i] = mk(fd, fd)
	}

	var cases []concCase
	for _, p := range []string{ours, oursGonum} {
		for _, g := range []int{1, 8, 64} {
			cases = append(cases, concCase{p, "apply", g})
		}
		for _, c := range []int{1, 2, 4} {
			cases = append(cases, concCase{p, "factorize", c})
		}
	}
	machine := concMachine()
	for _, l := range machine {
		fmt.Println(l)
	}
	rates := map[concCase][]float64{}
	for round := -1; round < rounds; round++ { // round -1 warms up
		for i := range cases {
			c := cases[(i+max(round, 0))%len(cases)]
			time.Sleep(250 * time.Millisecond) // let idle BLAS threads stop spinning
			var rate float64
			var err error
			if c.what == "apply" {
				rate, err = applyRate(shared[c.path], bias, k, c.callers, dur)
			} else {
				rate, err = factorizeRate(ws, fr, backends[c.path], c.callers, dur)
			}
			if err != nil {
				return fmt.Errorf("%s %s ×%d: %w", c.path, c.what, c.callers, err)
			}
			if round >= 0 {
				rates[c] = append(rates[c], rate)
				fmt.Printf("round %d  %-16s %-9s ×%-2d %10.1f /s\n", round, c.path, c.what, c.callers, rate)
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		machine = append(machine, "load average at the end: "+strings.Join(strings.Fields(string(b))[:3], ", "))
	}
	md := concMarkdown(machine, cases, rates, d, k, r, fd, fr, rounds, dur)
	path := filepath.Join(out, "concurrency.md")
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	fmt.Printf("wrote %s\n", path)
	return nil
}

// applyRate applies f from g goroutines, each with its own x and y, for
// about dur, and returns applies per second over all of them.
func applyRate(f *lowrank.Factors[float32], bias []float32, k, g int, dur time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := newRand(uint64(100 + i)).f32(k)
			y := make([]float32, len(bias))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := f.ApplyTo(y, x, bias); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	el := time.Since(start).Seconds()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n.Load()) / el, nil
}

// factorizeRate runs c callers, each factorizing its own matrix over and
// over until dur has passed, and returns factorizations per second (those
// finished, over the time until the last one finished).
func factorizeRate(ws []lowrank.Matrix[float32], r int, b lowrank.Backend, c int, dur time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := uint64(0); time.Now().Before(deadline); seed++ {
				if _, err := lowrank.Factorize(ws[i%len(ws)], lowrank.Rank(r), lowrank.WithBackend(b), lowrank.WithSeed(seed)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

func concMachine() []string {
	l := []string{"date: " + time.Now().UTC().Format("2006-01-02 15:04 MST")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, v, _ := strings.Cut(line, ":")
				l = append(l, "CPU: "+strings.TrimSpace(v))
				break
			}
		}
	}
	l = append(l, fmt.Sprintf("cores: %d, GOMAXPROCS %d", runtime.NumCPU(), runtime.GOMAXPROCS(0)))
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		l = append(l, "load average at start (1, 5, 15 min; other processes make timings noisy): "+strings.Join(strings.Fields(string(b))[:3], ", "))
	}
	for _, b := range lowrank.Backends() {
		if b.Name == "cpu" {
			for _, d := range b.Details {
				l = append(l, "lowrank cpu: "+d)
			}
		}
	}
	for _, v := range []string{"OPENBLAS_NUM_THREADS", "GOMAXPROCS"} {
		if s := os.Getenv(v); s != "" {
			l = append(l, v+"="+s)
		}
	}
	return append(l, "go: "+runtime.Version())
}

func concMarkdown(machine []string, cases []concCase, rates map[concCase][]float64, d, k, r, fd, fr, rounds int, dur time.Duration) string {
	var s strings.Builder
	fmt.Fprintf(&s, "# Concurrency: throughput with many callers\n\n")
	for _, l := range machine {
		fmt.Fprintf(&s, "- %s\n", l)
	}
	fmt.Fprintf(&s, "\napply: one shared rank-%d %d×%d float32 Factors, one vector per ApplyTo, each goroutine its own x and y; "+
		"factorize: Factorize(Rank(%d)) of independent %d×%d float32 matrices (Auto: randomized), each caller its own. "+
		"Median of %d rounds of %v each (min–max in brackets), rounds alternating between configurations; ratio: to one caller.\n\n",
		r, d, k, fr, fd, fd, rounds, dur)
	fmt.Fprintf(&s, "| path | workload | callers | per second | ratio to 1 |\n|---|---|---:|---:|---:|\n")
	one := map[string]float64{}
	for _, c := range cases {
		v := rates[c]
		m := median(v)
		if c.callers == 1 {
			one[c.path+c.what] = m
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, x := range v {
			lo, hi = min(lo, x), max(hi, x)
		}
		unit := "applies"
		if c.what == "factorize" {
			unit = "factorizations"
		}
		fmt.Fprintf(&s, "| %s | %s | %d | %.1f %s [%.1f–%.1f] | %.2f× |\n", c.path, c.what, c.callers, m, unit, lo, hi, m/one[c.path+c.what])
	}
	return s.String()
}
