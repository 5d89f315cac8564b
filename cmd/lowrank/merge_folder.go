package main

import (
	"io"
	"strings"

	"github.com/lowrank-go/lowrank/model"
	"github.com/lowrank-go/lowrank/safetensors"
)

// mergeFolder writes merge's (or unmerge's) output as a model folder:
// every base tensor in the layout's shards, the merged ones computed by
// compute, the base's metadata (with "format": "pt") in every shard. rank
// gives the adapter's rank of tensor i, when it has a module.
func mergeFolder(stderr io.Writer, cmd string, fb source, adapter string, tensors []safetensors.TensorInfo, rank func(i int) (int, bool), outOf func(safetensors.TensorInfo) safetensors.DType, costs []int64,
	compute func(i int) (outcome, error), s *settings) ([]row, error) {
	c := fb.(*model.Checkpoint)
	items := make([]planItem, len(tensors))
	for i, t := range tensors {
		dt := outOf(t)
		size := mul(int64(dt.Size()), t.NumElements())
		items[i] = planItem{name: t.Name, bound: size, bits: dt.Bits(), work: ioWork(size)}
		if r, ok := rank(i); ok {
			d, k, _, _ := model.WeightMatrix(t)
			items[i].work += 2 * float64(d) * float64(k) * float64(r)
		}
	}
	md := withFormat(fb.Metadata())
	job := &folderJob{cmd: cmd, src: c, extra: []string{adapter}, flags: s.fold.flags, out: s.output, fs: s.fold.fs, s: s,
		items: items, prefix: c.Prefix(), compute: compute, cost: func(i int) int64 { return costs[i] },
		piece: func(w *safetensors.Writer, _ []string) pieceWriter { return plainPiece{w: w, md: md} }}
	return runFolder(job, nil, stderr)
}

// withFormat returns md with "format": "pt" added when it has no "format"
// (transformers refuses a shard whose metadata lacks it).
func withFormat(md map[string]string) map[string]string {
	out := map[string]string{"format": "pt"}
	for k, v := range md {
		out[k] = v
	}
	return out
}

// densifyFolder writes densify's output as a model folder: one item per
// output tensor, in the input's order (a factor pair NAME.A, NAME.B becomes
// NAME, at the place of NAME.A), each in the dtype outOf gives, the input's
// metadata without lowrank's. costs are those of tensors (a pair's on its
// NAME.A).
func densifyFolder(stderr io.Writer, f source, pairs map[string]bool, tensors []safetensors.TensorInfo, costs []int64,
	outOf func(name string, own safetensors.DType, pair bool) safetensors.DType, s *settings) ([]row, error) {
	c := f.(*model.Checkpoint)
	costOf := make(map[string]int64, len(tensors))
	for i, t := range tensors {
		costOf[t.Name] = costs[i]
	}
	var items []planItem
	var compute []func() (outcome, error)
	var cost []int64
	for _, t := range f.Tensors() {
		if n, isB := strings.CutSuffix(t.Name, ".B"); isB && pairs[n] {
			continue
		}
		name, isA := strings.CutSuffix(t.Name, ".A")
		if !isA || !pairs[name] {
			dt := outOf(t.Name, t.DType, false)
			size := mul(int64(dt.Size()), t.NumElements())
			items = append(items, planItem{name: t.Name, bound: size, bits: dt.Bits(), work: ioWork(size)})
			compute = append(compute, func() (outcome, error) {
				if dt != t.DType {
					return convertOutcome(f, t, dt)
				}
				return copyOutcome(f, t), nil
			})
			cost = append(cost, costOf[t.Name])
			continue
		}
		b, _ := f.Tensor(name + ".B")
		r, k, d := t.Shape[0], t.Shape[1], b.Shape[0]
		own := pairDType(t.DType, b.DType)
		dt := outOf(name, own, true)
		size := mul(int64(dt.Size()), d, k)
		items = append(items, planItem{name: name, bound: size, bits: dt.Bits(), work: 2*float64(d)*float64(k)*float64(r) + ioWork(size)})
		compute = append(compute, func() (outcome, error) {
			if computesIn64(own, dt) {
				return densifyOne[float64](f, name, own, dt)
			}
			return densifyOne[float32](f, name, own, dt)
		})
		cost = append(cost, costOf[t.Name])
	}
	md := map[string]string{}
	for k, v := range withFormat(f.Metadata()) {
		if k != metaKey {
			md[k] = v
		}
	}
	job := &folderJob{cmd: "densify", src: c, flags: s.fold.flags, out: s.output, fs: s.fold.fs, s: s,
		items: items, prefix: c.Prefix(), compute: func(i int) (outcome, error) { return compute[i]() }, cost: func(i int) int64 { return cost[i] },
		piece: func(w *safetensors.Writer, _ []string) pieceWriter { return plainPiece{w: w, md: md} }}
	return runFolder(job, nil, stderr)
}
