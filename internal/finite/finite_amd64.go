//go:build amd64 && !purego

package finite

import "golang.org/x/sys/cpu"

var hasAVX = cpu.X86.HasAVX

// has32 reports whether v (len a multiple of 32) holds a NaN or ±Inf.
//
//go:noescape
func has32(v []float32) bool

// has64 reports whether v (len a multiple of 16) holds a NaN or ±Inf.
//
//go:noescape
func has64(v []float64) bool
