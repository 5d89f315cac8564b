//go:build !cgo || !amd64 || purego

package bf16

const hasKernel = false

func roundRows(src []float32, lds, i0, i1, cols int, dst []uint16, ldd int) {
	panic("bf16: no kernel in this build")
}

func roundCols(src []float32, lds, rows, j0, j1 int, dst []uint16, ldd int) {
	panic("bf16: no kernel in this build")
}

func pack(x []float32, ldx int, trans bool, k, n int, xp []uint16, np int) {
	panic("bf16: no kernel in this build")
}

func gemmN(a []float32, lda, i0, i1, k int, xp []uint16, np, n int, c []float32, ldc int, alpha, beta float32, kcp int, buf []uint16) {
	panic("bf16: no kernel in this build")
}

func gemmT(b []float32, ldb, m, j0, j1 int, at []uint16, ldat, n int, c []float32, ldc int, alpha, beta float32, kcp int, xp []uint16, tile []float32) {
	panic("bf16: no kernel in this build")
}

func roundOne(f float32) uint16 { panic("bf16: no kernel in this build") }

func runPool(ps []part, trans bool, a []float32, lda, m, k int, x []uint16, ldx, n int, c []float32, ldc int, alpha, beta float32, kcp int) bool {
	return false
}

func poolTasks() int { return 0 }
