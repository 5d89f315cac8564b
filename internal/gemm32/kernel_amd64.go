//go:build amd64 && !purego

package gemm32

import "golang.org/x/sys/cpu"

// hasKernel reports whether kernel6x16 can run: AVX2 and FMA, with the OS
// saving YMM registers (x/sys/cpu checks XGETBV).
var hasKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernel6x16 is implemented in kernel_amd64.s.
//
//go:noescape
func kernel6x16(kc int, a *float32, rs, ps int, b *float32, ldb int, c *float32, ldc int, alpha float32)
