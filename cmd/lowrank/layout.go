package main

import (
	"sort"

	"github.com/lowrank-go/lowrank/safetensors"
)

// The layout of a folder output is decided before any work, from the input
// alone (and the flags), so that every process of a distributed run (and a
// resumed one) computes the same: which tensors go into which shard file,
// in which order, and which process does which tensors.
//
// Shards are filled in the input's order (its shards by name, each file's
// tensors in the order of their data) as Hugging Face fills them
// (huggingface_hub's split_state_dict_into_shards): a tensor that would
// take a shard past --max-shard-size starts a new one; one larger than the
// limit gets a shard of its own. What is counted is the most bytes a
// tensor's output can take, known before it is computed: a factorized
// tensor is written as factors only when they are smaller than the dense
// tensor, so its dense size in the output dtype bounds it (its factors
// stay in the shard of the tensor: NAME.A and NAME.B are never split). The
// shards of a factorized model are therefore at most --max-shard-size, and
// usually smaller. Within a shard, tensors are written by decreasing
// element size (F64, F32, F16/BF16, …), the input's order kept within a
// size, so that every tensor's data is aligned.

// planItem is one input tensor as the layout sees it.
type planItem struct {
	name  string
	bound int64 // the most bytes its output takes
	bits  int   // element bits of its output (the order within a shard)
	work  float64
	// group: the tensor stays with the one before it (a bias that takes
	// its calibrated weight's mean error, computed after it).
	group bool
}

// layout is where the tensors of a folder output go.
type layout struct {
	// order lists the items (indices of the input order) in the order
	// they are written; shard[k] is the shard of order[k] (from 0), and
	// shards lists each shard's first and end position in order.
	order  []int
	shard  []int
	shards [][2]int
}

// planLayout packs items (in input order) into shards of at most maxShard
// bytes.
func planLayout(items []planItem, maxShard int64) *layout {
	l := &layout{}
	var cur []int
	var size int64
	flush := func() {
		if len(cur) == 0 {
			return
		}
		sort.SliceStable(cur, func(a, b int) bool { return items[cur[a]].bits > items[cur[b]].bits })
		start := len(l.order)
		for _, i := range cur {
			l.order = append(l.order, i)
			l.shard = append(l.shard, len(l.shards))
		}
		l.shards = append(l.shards, [2]int{start, len(l.order)})
		cur, size = nil, 0
	}
	for i := 0; i < len(items); {
		// A unit: an item and those grouped with it.
		j := i + 1
		var u int64 = items[i].bound
		for j < len(items) && items[j].group {
			u = add(u, items[j].bound)
			j++
		}
		if len(cur) > 0 && add(size, u) > maxShard {
			flush()
		}
		for k := i; k < j; k++ {
			cur = append(cur, k)
		}
		size = add(size, u)
		if u > maxShard {
			flush() // alone in its shard
		}
		i = j
	}
	flush()
	return l
}

// split returns the positions [lo, hi) of l.order that part p of n does:
// contiguous ranges, cut where the running sum of the items' work crosses
// p/n of the total (never inside a group), so that every part has about
// the same work and each shard is split between few parts.
func (l *layout) split(items []planItem, p, n int) (lo, hi int) {
	bounds := make([]int, n+1)
	var total float64
	for _, i := range l.order {
		total += items[i].work
	}
	bounds[n] = len(l.order)
	var sum float64
	q := 1
	for k, i := range l.order {
		for q < n && sum >= total*float64(q)/float64(n) && !items[i].group {
			bounds[q] = k
			q++
		}
		sum += items[i].work
	}
	for ; q < n; q++ {
		bounds[q] = len(l.order)
	}
	return bounds[p], bounds[p+1]
}

// shardNames returns the file names of the layout's shards: Hugging Face's
// PREFIX-0000i-of-0000N.safetensors when sharded, else PREFIX.safetensors.
func (l *layout) shardNames(prefix string, sharded bool) []string {
	names := make([]string, len(l.shards))
	for j := range l.shards {
		if sharded {
			names[j] = safetensors.ShardName(prefix, j+1, len(l.shards))
		} else {
			names[j] = prefix + ".safetensors"
		}
	}
	return names
}

// factorizeWork estimates the work of factorizing a d×k tensor: the
// flops of an exact SVD (d·k·min(d,k)), or, for a randomized SVD of a
// sketch of l columns with q power iterations, d·k·l·(2q+2); and reading
// and writing its bytes.
func factorizeWork(d, k, l, q int, bytes int64) float64 {
	m := min(d, k)
	w := float64(d) * float64(k) * float64(m)
	if l > 0 && l < m {
		w = float64(d) * float64(k) * float64(l) * float64(2*q+2)
	}
	return w + ioWork(bytes)
}

// ioWork is the work of reading and writing n bytes, in the flops of the
// estimates (a byte moved costs about what a hundred flops do).
func ioWork(n int64) float64 { return 100 * float64(n) }
