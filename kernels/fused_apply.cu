// fused_apply: Y = X*A^T*B^T + bias in one launch, for one vector or a small
// batch: row j of Y is B*(A*x_j) + bias, the factorized linear layer.
//
// Compiled by NVRTC with -DREAL=float or -DREAL=double. All matrices are
// row-major and contiguous: A is rxk, B is dxr, X is nxk, Y is nxd; bias
// has d entries or is null.
//
// Every block first computes the whole of T = X*A^T (nxr) into shared
// memory (one warp per row of A, lanes striding along k so that reads are
// coalesced), then the rows of Y assigned to it (one warp per row of B).
// Recomputing T in every block costs r*k*n multiply-adds per block but
// needs no grid-wide synchronization; the launcher keeps the grid small.
// Dynamic shared memory: n*r*sizeof(REAL) bytes.
#ifndef REAL
#define REAL float
#endif

static __device__ __forceinline__ REAL lr_warp_sum(REAL v) {
	for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
	return v;
}

extern "C" __global__ void fused_apply(const REAL *__restrict__ A, const REAL *__restrict__ B,
                                       const REAL *__restrict__ X, const REAL *__restrict__ bias,
                                       REAL *__restrict__ Y, int d, int r, int k, int n) {
	extern __shared__ unsigned char lr_smem[];
	REAL *t = reinterpret_cast<REAL *>(lr_smem);
	const int lane = threadIdx.x & 31;
	const int warp = threadIdx.x >> 5;
	const int nwarps = blockDim.x >> 5;

	for (int c = warp; c < r; c += nwarps) {
		const REAL *arow = A + (unsigned long long)c * k;
		for (int j = 0; j < n; j++) {
			const REAL *x = X + (unsigned long long)j * k;
			REAL s = 0;
			for (int i = lane; i < k; i += 32) s += arow[i] * x[i];
			s = lr_warp_sum(s);
			if (lane == 0) t[j * r + c] = s;
		}
	}
	__syncthreads();

	const int per = (d + gridDim.x - 1) / gridDim.x;
	const int i0 = blockIdx.x * per;
	const int i1 = i0 + per < d ? i0 + per : d;
	for (int i = i0 + warp; i < i1; i += nwarps) {
		const REAL *brow = B + (unsigned long long)i * r;
		const REAL b = bias ? bias[i] : (REAL)0;
		for (int j = 0; j < n; j++) {
			const REAL *tj = t + j * r;
			REAL s = 0;
			for (int c = lane; c < r; c += 32) s += brow[c] * tj[c];
			s = lr_warp_sum(s);
			if (lane == 0) Y[(unsigned long long)j * d + i] = s + b;
		}
	}
}
