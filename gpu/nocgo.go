//go:build !cgo

package gpu

import (
	"time"

	"github.com/lowrank-go/lowrank/internal/cuda"
	"github.com/lowrank-go/lowrank/la"
)

// newEngines is never reached without cgo: Init fails first with
// cuda.ErrNoCgo.
func newEngines(*cuda.Device, *settings) (la.Engine[float32], la.Engine[float64]) { return nil, nil }

// DeviceTime reports that the backend needs cgo.
func (b *Backend) DeviceTime(func() error) (time.Duration, error) {
	if err := b.Init(); err != nil {
		return 0, err
	}
	return 0, cuda.ErrNoCgo
}
