package cuda

import (
	"fmt"
	"sort"
)

// chooseArch picks NVRTC's --gpu-architecture for a device of compute
// capability cc (major·10 + minor) given the architectures NVRTC supports
// (nil: unknown, assume the device's own is):
//
//   - the device's own sm_XY, compiled to a cubin, when NVRTC supports it;
//   - else the newest supported sm_XZ of the same major with Z ≤ Y, also a
//     cubin (a cubin runs on devices of its major and a higher minor);
//   - else the newest supported compute_XY below the device's, compiled to
//     PTX for the driver to JIT-compile.
//
// PTX is not always accepted: NVRTC writes the PTX ISA version of its own
// release (NVRTC 11.8 writes PTX 7.8), and a driver JIT-compiles only the
// ISA versions it knows. The NVRTC major is never above the driver's, but
// under minor-version compatibility a CUDA 11.4 driver runs the 11.8
// libraries and still rejects their PTX (CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
// from cuModuleLoadData). Kernel then returns that error, and the fused
// apply, its only user, falls back to cuBLAS. A cubin has no such limit.
//
// It fails when NVRTC supports nothing at or below the device.
func chooseArch(cc int, supported []int) (arch string, cubin bool, err error) {
	if len(supported) == 0 {
		return fmt.Sprintf("sm_%d", cc), true, nil
	}
	s := append([]int(nil), supported...)
	sort.Ints(s)
	bestSame, bestBelow := -1, -1
	for _, a := range s {
		if a == cc {
			return fmt.Sprintf("sm_%d", cc), true, nil
		}
		if a < cc {
			bestBelow = a
			if a/10 == cc/10 {
				bestSame = a
			}
		}
	}
	if bestSame >= 0 {
		return fmt.Sprintf("sm_%d", bestSame), true, nil
	}
	if bestBelow >= 0 {
		return fmt.Sprintf("compute_%d", bestBelow), false, nil
	}
	return "", false, fmt.Errorf("NVRTC supports architectures %v, none at or below the device's sm_%d", s, cc)
}
