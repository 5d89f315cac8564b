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
func mergeFolder(stderr io.Writer, cmd string, fb source, adapter string, tensors []safetensors.TensorInfo, rank func(i int) (int, bool), costs []int64,
	compute func(i int) (outcome, error), s *settings) ([]row, error) {
	c := fb.(*model.Checkpoint)
	items := make([]planItem, len(tensors))
	for i, t := range tensors {
		items[i] = planItem{name: t.Name, bound: t.Size(), bits: t.DType.Bits(), work: ioWork(t.Size())}
		if r, ok := rank(i); ok {
			d, k, _ := t.Matrix()
			items[i].work += 2 * float64(d) * float64(k) * float64(r)
		}
	}
	md := withFormat(fb.Metadata())
	job := &folderJob{cmd: cmd, src: c, extra: []string{adapter}, flags: s.fold.flags, out: s.output, fs: s.fold.fs, s: s,
		items: items, prefix: c.Prefix(), compute: compute, cost: func(i int) int64 { return costs[i] },
		piece: func(w *safetensors.Writer) pieceWriter { return plainPiece{w: w, md: md} }}
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
// output tensor (a factor pair NAME.A, NAME.B becomes NAME, at the place
// of NAME.A), the input's metadata without lowrank's. costs are by input
// tensor (a pair's on its NAME.A).
func densifyFolder(stderr io.Writer, f source, pairs map[string]bool, costs []int64, s *settings) ([]row, error) {
	c := f.(*model.Checkpoint)
	var items []planItem
	var compute []func() (outcome, error)
	var cost []int64
	for i, t := range f.Tensors() {
		if n, isB := strings.CutSuffix(t.Name, ".B"); isB && pairs[n] {
			continue
		}
		name, isA := strings.CutSuffix(t.Name, ".A")
		if !isA || !pairs[name] {
			items = append(items, planItem{name: t.Name, bound: t.Size(), bits: t.DType.Bits(), work: ioWork(t.Size())})
			compute = append(compute, func() (outcome, error) { return copyOutcome(f, t), nil })
			cost = append(cost, costs[i])
			continue
		}
		b, _ := f.Tensor(name + ".B")
		r, k, d := t.Shape[0], t.Shape[1], b.Shape[0]
		size := mul(int64(t.DType.Size()), d, k)
		items = append(items, planItem{name: name, bound: size, bits: t.DType.Bits(), work: 2*float64(d)*float64(k)*float64(r) + ioWork(size)})
		dt, out := t.DType, s.output
		compute = append(compute, func() (outcome, error) {
			if computesIn64(dt, b.DType) {
				return densifyOne[float64](f, name, dt, out)
			}
			return densifyOne[float32](f, name, dt, out)
		})
		cost = append(cost, costs[i])
	}
	md := map[string]string{}
	for k, v := range withFormat(f.Metadata()) {
		if k != metaKey {
			md[k] = v
		}
	}
	job := &folderJob{cmd: "densify", src: c, flags: s.fold.flags, out: s.output, fs: s.fold.fs, s: s,
		items: items, prefix: c.Prefix(), compute: func(i int) (outcome, error) { return compute[i]() }, cost: func(i int) int64 { return cost[i] },
		piece: func(w *safetensors.Writer) pieceWriter { return plainPiece{w: w, md: md} }}
	return runFolder(job, nil, stderr)
}
