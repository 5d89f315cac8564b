//go:build !cgo

package cuda

// Config says how Open finds the device and the libraries.
type Config struct {
	Loader  Loader
	Ordinal int
}

// Device is unavailable in a binary built without cgo.
type Device struct{}

// Open reports that the CUDA backend needs cgo.
func Open(Config) (*Device, error) { return nil, ErrNoCgo }

// Info returns nothing without cgo.
func (d *Device) Info() Info { return Info{} }

// Close does nothing without cgo.
func (d *Device) Close() error { return nil }

// LiveAllocations is always 0 without cgo.
func LiveAllocations() int64 { return 0 }

// Lost is always nil without cgo.
func (d *Device) Lost() error { return nil }
