//go:build !cgo

package gpu

import (
	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/la"
)

// newEngines is never reached without cgo: Init fails first with
// cuda.ErrNoCgo.
func newEngines(*cuda.Device, *settings) (la.Engine[float32], la.Engine[float64]) { return nil, nil }
