// Command genmodel writes a synthetic model file for measuring lowrank's
// memory and speed on files of realistic size: LAYERS matrices of D×K
// float32 values, each a rank-R product plus small noise, and a bias each.
//
//	go run ./scripts/genmodel -o model.safetensors -layers 24 -d 2048 -k 2048 -r 32
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/lowrank-go/lowrank/safetensors"
)

func main() {
	out := flag.String("o", "model.safetensors", "output file")
	layers := flag.Int("layers", 24, "number of weight matrices")
	d := flag.Int("d", 2048, "rows of each matrix")
	k := flag.Int("k", 2048, "columns of each matrix")
	r := flag.Int("r", 32, "rank of the signal in each matrix")
	noise := flag.Float64("noise", 1e-3, "relative size of the full-rank noise")
	flag.Parse()
	if err := run(*out, *layers, *d, *k, *r, *noise); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(out string, layers, d, k, r int, noise float64) error {
	w, err := safetensors.Create(out, safetensors.WriterOptions{Overwrite: true})
	if err != nil {
		return err
	}
	defer w.Abort()
	rng := rand.New(rand.NewPCG(1, 2))
	m := make([]float32, d*k)
	g1, g2 := make([]float32, d*r), make([]float32, r*k)
	for l := range layers {
		for i := range g1 {
			g1[i] = float32(rng.NormFloat64())
		}
		for i := range g2 {
			g2[i] = float32(rng.NormFloat64())
		}
		for i := range d {
			row := m[i*k : (i+1)*k]
			for j := range row {
				row[j] = float32(noise * rng.NormFloat64())
			}
			for t := range r {
				a := g1[i*r+t] / float32(r)
				for j, b := range g2[t*k : (t+1)*k] {
					row[j] += a * b
				}
			}
		}
		if err := w.WriteFloat32(fmt.Sprintf("layers.%d.proj.weight", l), safetensors.F32, []int{d, k}, m); err != nil {
			return err
		}
		if err := w.WriteFloat32(fmt.Sprintf("layers.%d.proj.bias", l), safetensors.F32, []int{d}, m[:d]); err != nil {
			return err
		}
	}
	w.SetMetadata(map[string]string{"format": "pt"})
	return w.Close()
}
