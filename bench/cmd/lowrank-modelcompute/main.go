// Command lowrank-modelcompute times the computation alone of
// `lowrank factorize --rank 64 --method randomized` on a safetensors file:
// every 2-D tensor is read and converted to float32 first, then
// lowrank.FactorizeContext runs on each, two warm-up rounds, a garbage
// collection, then five timed rounds; it prints the sum per round and
// their median. It is the "compute alone" against which the whole command
// is measured (docs/performance.md, "Whole model: overlap"). The warm-up
// lets the Go heap reach its working size first: holding every tensor
// (256 MiB), this program's first rounds fault in fresh memory that the
// command, holding one tensor at a time, does not (on the virtual
// machines we measured, ≈ 15 µs per 4 KiB page: rounds of 1.1 s against
// 0.35 s once warm).
//
//	go run ./cmd/lowrank-modelcompute [-sketch-precision bf16] model.safetensors
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/lowrank-go/lowrank"
	"github.com/lowrank-go/lowrank/safetensors"
)

func main() {
	prec := flag.String("sketch-precision", "f32", "the range finder's products: f32 or bf16 (as the command's flag)")
	flag.Parse()
	if flag.NArg() != 1 || (*prec != "f32" && *prec != "bf16") {
		fmt.Fprintln(os.Stderr, "usage: lowrank-modelcompute [-sketch-precision f32|bf16] FILE.safetensors")
		os.Exit(2)
	}
	opts := []lowrank.Option{lowrank.WithMethod(lowrank.Randomized)}
	if *prec == "bf16" {
		opts = append(opts, lowrank.WithSketchPrecision(lowrank.SketchBF16))
	}
	f, err := safetensors.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var ms []lowrank.Matrix[float32]
	t0 := time.Now()
	for _, t := range f.Tensors() {
		if len(t.Shape) != 2 {
			continue
		}
		v, err := f.Float32s(t.Name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ms = append(ms, lowrank.Matrix[float32]{Rows: int(t.Shape[0]), Cols: int(t.Shape[1]), Data: v})
	}
	read := time.Since(t0)
	var sums []time.Duration
	for rep := -2; rep < 5; rep++ {
		if rep == 0 {
			runtime.GC()
		}
		var total time.Duration
		for _, m := range ms {
			s := time.Now()
			if _, err := lowrank.FactorizeContext(context.Background(), m, lowrank.Rank(64), opts...); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			total += time.Since(s)
		}
		if rep < 0 {
			fmt.Printf("warm-up: compute %d tensors: %v\n", len(ms), total)
			continue
		}
		sums = append(sums, total)
		fmt.Printf("read+convert %v; compute %d tensors: %v\n", read, len(ms), total)
	}
	slices.Sort(sums)
	fmt.Printf("median compute: %v (min %v)\n", sums[2], sums[0])
}
