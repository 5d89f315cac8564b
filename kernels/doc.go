// Package kernels holds the CUDA C sources lowrank compiles at run time
// with NVRTC, one extern "C" __global__ kernel per .cu file.
package kernels
