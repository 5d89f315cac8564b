//go:build !amd64 || purego

package gemm32

const hasKernel = false

func kernel6x16(kc int, a *float32, rs, ps int, b *float32, ldb int, c *float32, ldc int, alpha float32) {
}
