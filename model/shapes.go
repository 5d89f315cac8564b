package model

import (
	"slices"

	"github.com/lowrank-go/lowrank/safetensors"
)

// WeightMatrix returns the matrix a weight tensor stands for: a 2-D float
// tensor (a Linear or Embedding weight) as it is, d×k; a 4-D float tensor
// (a Conv2d weight, out × in × k_h × k_w) as the out × (in·k_h·k_w) matrix
// of its rows, with its kernel [k_h, k_w]. That matrix is the tensor's
// bytes as they are (row-major), and it maps a patch of the input, laid
// out as torch.nn.functional.unfold lays it out (channel, then row, then
// column of the kernel), to the output channels at one position:
//
//	conv2d(x, W)[o, p] = Σ_j W[o, j] · unfold(x)[j, p]
//
// so factors of it are a conv LoRA's lora_down (r × in × k_h × k_w) and
// lora_up (out × r × 1 × 1). Other tensors are not weights (ok false).
func WeightMatrix(t safetensors.TensorInfo) (d, k int, kernel []int, ok bool) {
	if !t.DType.IsFloat() || slices.Contains(t.Shape, 0) {
		return 0, 0, nil, false
	}
	switch len(t.Shape) {
	case 2:
		return t.Shape[0], t.Shape[1], nil, true
	case 4:
		return t.Shape[0], t.Shape[1] * t.Shape[2] * t.Shape[3], []int{t.Shape[2], t.Shape[3]}, true
	}
	return 0, 0, nil, false
}

// isWeight reports whether t is a weight: a 2-D or 4-D float tensor.
func isWeight(t safetensors.TensorInfo) bool {
	_, _, _, ok := WeightMatrix(t)
	return ok
}

// upFactor returns the rows and columns of a LoRA up factor (lora_B,
// lora_up): a 2-D d×r matrix, or a conv's d × r × 1 × 1.
func upFactor(t safetensors.TensorInfo) (d, r int, ok bool) {
	d, r, kernel, ok := WeightMatrix(t)
	if !ok || (kernel != nil && (kernel[0] != 1 || kernel[1] != 1)) {
		return 0, 0, false
	}
	return d, r, true
}
