package lowrank

// SetProductBlock sets how many elements of W a product holds on an engine
// at once, and returns a function that restores it.
func SetProductBlock(n int) (restore func()) {
	old := productBlock
	productBlock = n
	return func() { productBlock = old }
}
