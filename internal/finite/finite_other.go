//go:build !amd64 || purego

package finite

const hasAVX = false

func has32(v []float32) bool { return Portable(v) }
func has64(v []float64) bool { return Portable(v) }
