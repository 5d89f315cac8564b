package cuda

import "fmt"

// Info describes the device and the libraries a Device runs on.
type Info struct {
	Ordinal          int
	Devices          int // the devices visible (cuDeviceGetCount)
	Name             string
	CCMajor, CCMinor int    // compute capability
	SMs              int    // multiprocessors
	TotalMem         uint64 // bytes
	FreeMem          uint64 // bytes free when the device was opened
	Driver           int    // cuDriverGetVersion: 1000·major + 10·minor
	DriverPath       string // the libcuda.so.1 that was loaded
	Libs             []LibInfo
	// NVRTC is nil when NVRTC could not be loaded; NVRTCErr says why.
	// Everything but the NVRTC kernels works without it.
	NVRTC     *LibInfo
	NVRTCErr  string
	HasGesvdp bool // cusolverDnXgesvdp is exported
}

// LibInfo is one loaded library.
type LibInfo struct {
	Name    string // "cuBLAS", "cuSOLVER", ...
	Version string // "12.9.1"
	Path    string // the file loaded
}

// DriverVersion returns the driver's CUDA version as "13.0".
func (i Info) DriverVersion() string { return versionString(i.Driver) }

func versionString(v int) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }

// Lines returns the facts of i one per line, for lowrank backends.
func (i Info) Lines() []string {
	out := []string{
		fmt.Sprintf("device %d: %s (compute capability %d.%d, %d SMs)", i.Ordinal, i.Name, i.CCMajor, i.CCMinor, i.SMs),
		fmt.Sprintf("memory: %.1f GiB total, %.1f GiB free", gib(i.TotalMem), gib(i.FreeMem)),
		fmt.Sprintf("driver: CUDA %s (%s)", i.DriverVersion(), i.DriverPath),
	}
	for _, l := range i.Libs {
		out = append(out, fmt.Sprintf("%s %s (%s)", l.Name, l.Version, l.Path))
	}
	if i.NVRTC != nil {
		out = append(out, fmt.Sprintf("%s %s (%s)", i.NVRTC.Name, i.NVRTC.Version, i.NVRTC.Path))
	} else {
		out = append(out, "NVRTC: not available ("+i.NVRTCErr+"); fused kernels disabled")
	}
	return out
}

func gib(b uint64) float64 { return float64(b) / (1 << 30) }
