package cuda

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// pciDevices is the sysfs folder where Linux lists the PCI devices, one
// folder each with a vendor file ("0x10de" for NVIDIA).
const pciDevices = "/sys/bus/pci/devices"

// nvidiaVendor is NVIDIA's PCI vendor ID as sysfs writes it.
const nvidiaVendor = "0x10de"

// wslGPU is the device through which WSL 2 reaches the host's GPU, which
// is then on no PCI bus of the guest.
const wslGPU = "/dev/dxg"

// NoGPU reports, without loading the driver, that this machine certainly
// has no GPU the NVIDIA driver could use, and why; false when it cannot
// tell. cuInit takes 100–200 ms to find that out where NVIDIA's libcuda
// is installed without a GPU (it retries opening /dev/nvidiactl), which
// the automatic backend choice need not pay for every command.
//
// It is sure only on Linux on amd64 (an arm64 Jetson's GPU is no PCI
// device), when LOWRANK_CUDA_LIB_DIR is not set (a configured CUDA is
// loaded to say what is wrong with it), there is no /dev/dxg (WSL 2), and
// sysfs lists PCI devices of which none is NVIDIA's. Anything it cannot
// read makes it answer false, and the driver is asked as before.
func NoGPU() (string, bool) { return noGPU(osEnv(), runtime.GOOS, runtime.GOARCH) }

func noGPU(e env, goos, goarch string) (string, bool) {
	if goos != "linux" || goarch != "amd64" || strings.TrimSpace(e.getenv(LibDirEnv)) != "" || e.exists(wslGPU) {
		return "", false
	}
	vendors := e.glob(pciDevices + "/*/vendor")
	if len(vendors) == 0 {
		return "", false // sysfs absent or hidden: cannot tell
	}
	for _, v := range vendors {
		b, err := e.read(v)
		if err != nil || strings.TrimSpace(string(b)) == nvidiaVendor {
			return "", false
		}
	}
	return fmt.Sprintf("no NVIDIA GPU on this machine: none of the %d PCI devices in %s is NVIDIA's (vendor %s), and there is no %s (WSL 2); %s=cuda asks the driver anyway",
		len(vendors), pciDevices, nvidiaVendor, wslGPU, backendEnv), true
}

// backendEnv is lowrank.BackendEnv, which this package cannot import.
const backendEnv = "LOWRANK_BACKEND"

// exists reports whether path exists (for env).
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
