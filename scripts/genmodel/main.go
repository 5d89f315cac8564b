// Command genmodel writes a synthetic model for measuring lowrank's memory
// and speed on models of realistic size: LAYERS matrices of D×K values,
// each a rank-R product plus small noise, and a bias each, as one file or,
// with -shards N, as a Hugging Face model folder (N shards
// model-0000i-of-0000N.safetensors, model.safetensors.index.json and a
// config.json).
//
//	go run ./scripts/genmodel -o model.safetensors -layers 24 -d 2048 -k 2048 -r 32
//	go run ./scripts/genmodel -o big-model -shards 3 -dtype bf16 -layers 32 -d 8192 -k 8192 -r 16
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/lowrank-go/lowrank/safetensors"
)

func main() {
	out := flag.String("o", "model.safetensors", "output file (with -shards: output folder)")
	layers := flag.Int("layers", 24, "number of weight matrices")
	d := flag.Int("d", 2048, "rows of each matrix")
	k := flag.Int("k", 2048, "columns of each matrix")
	r := flag.Int("r", 32, "rank of the signal in each matrix")
	noise := flag.Float64("noise", 1e-3, "relative size of the full-rank noise")
	dtype := flag.String("dtype", "f32", "dtype of the tensors: f32, f16 or bf16")
	shards := flag.Int("shards", 0, "write a model folder of this many shards (0: one file)")
	flag.Parse()
	dt := safetensors.DType(map[string]string{"f32": "F32", "f16": "F16", "bf16": "BF16"}[*dtype])
	if dt == "" || *shards < 0 || *shards > *layers {
		fmt.Fprintln(os.Stderr, "genmodel: expected -dtype f32, f16 or bf16 and -shards from 0 to -layers")
		os.Exit(2)
	}
	if err := run(*out, *layers, *d, *k, *r, *noise, dt, *shards); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(out string, layers, d, k, r int, noise float64, dt safetensors.DType, shards int) error {
	files, paths := 1, []string{out}
	if shards > 0 {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		files, paths = shards, nil
		for s := range shards {
			paths = append(paths, filepath.Join(out, safetensors.ShardName("model", s+1, shards)))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	m := make([]float32, d*k)
	g1, g2 := make([]float32, d*r), make([]float32, r*k)
	weightMap := map[string]string{}
	var total int64
	l := 0
	for s, path := range paths {
		w, err := safetensors.Create(path, safetensors.WriterOptions{Overwrite: true})
		if err != nil {
			return err
		}
		defer w.Abort()
		for ; l < (s+1)*layers/files; l++ {
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
			wn, bn := fmt.Sprintf("layers.%d.proj.weight", l), fmt.Sprintf("layers.%d.proj.bias", l)
			if err := w.WriteFloat32(wn, dt, []int{d, k}, m); err != nil {
				return err
			}
			if err := w.WriteFloat32(bn, dt, []int{d}, m[:d]); err != nil {
				return err
			}
			weightMap[wn], weightMap[bn] = filepath.Base(path), filepath.Base(path)
			total += int64(d*k+d) * int64(dt.Size())
		}
		w.SetMetadata(map[string]string{"format": "pt"})
		if err := w.Close(); err != nil {
			return err
		}
	}
	if shards == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(out, "model.safetensors.index.json"), safetensors.IndexJSON(total, weightMap), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "config.json"), []byte(`{"model_type": "genmodel"}`+"\n"), 0o644)
}
