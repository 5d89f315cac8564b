package gpu

import (
	"github.com/lowrank-go/lowrank/internal/cuda"
)

// NewDevice returns a backend on device ordinal (after
// CUDA_VISIBLE_DEVICES) with a device of its own: its own context thread,
// stream and handles, opened by Init, released by Close. Several such
// backends, one per GPU, run at once (lowrank factorize --devices).
func NewDevice(ordinal int) *Backend { return NewDeviceWith(ordinal, nil) }

// NewDeviceWith is NewDevice with the libraries opened through l (nil:
// dlopen); the tests pass the fake CUDA of internal/testkit/fakecuda.
func NewDeviceWith(ordinal int, l cuda.Loader) *Backend {
	b := &Backend{ordinal: ordinal}
	b.open = func() (*cuda.Device, error) { return cuda.Open(cuda.Config{Loader: l, Ordinal: ordinal}) }
	return b
}

// Devices returns the number of devices visible to the process, as the
// driver counts them, once Init has succeeded (0 otherwise).
func (b *Backend) Devices() int {
	if b.Init() != nil {
		return 0
	}
	return b.dev.Info().Devices
}

// Ordinal returns the device a NewDevice backend runs on (0 for New's).
func (b *Backend) Ordinal() int { return b.ordinal }

// Close releases the device of a NewDevice backend (waiting for its work);
// the backend is unusable afterwards. It does nothing for New's backends,
// which share the process's device.
func (b *Backend) Close() error {
	if b.open == nil {
		return nil
	}
	b.once.Do(func() { b.err = cuda.ErrClosed })
	if b.dev != nil {
		return b.dev.Close()
	}
	return nil
}
