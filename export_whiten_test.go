package lowrank

// SetCholBlock sets the width of the blocks the Cholesky factorization
// and the triangular solve of data-aware factorization handle on the host,
// and returns a function that restores it.
func SetCholBlock(n int) (restore func()) {
	old := cholBlock
	cholBlock = n
	return func() { cholBlock = old }
}
