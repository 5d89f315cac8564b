#!/usr/bin/env python3
"""Side-by-side figures for lowrank's GPU benchmarks, computed with torch on
the same GPU (run by scripts/gpu-check.sh).

The problems match gpu/bench_test.go:
  * exact SVD of a 4096x4096 float32 matrix (torch.linalg.svd, thin);
  * randomized rank 64 of 4096x4096 and 4096x11008 float32 matrices with the
    spectrum sigma_i = exp(-i/64) + 1e-3 (torch.svd_lowrank with
    q = 64 + 10 oversampling and niter = 2, lowrank's defaults), reporting
    the relative Frobenius error over the optimal (Eckart-Young) one;
  * applying rank-64 factors: y = (x @ A.T) @ B.T + b for one vector and a
    batch of 64, on the device and host-to-host (transfers included, as
    lowrank's Apply is).
Times are CUDA-event milliseconds (median of several runs).

Usage: gpu_torch_bench.py [--json FILE] [--quick]
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch


def timed(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def spectrum(n):
    return torch.tensor([math.exp(-i / 64) + 1e-3 for i in range(n)], dtype=torch.float64)


def spectral_matrix(d, k, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    p = min(d, k)
    u, _ = torch.linalg.qr(torch.randn(d, p, device="cuda", generator=g))
    v, _ = torch.linalg.qr(torch.randn(k, p, device="cuda", generator=g))
    s = spectrum(p).to("cuda", torch.float32)
    return (u * s) @ v.T


def optimal_error(s, r):
    s2 = s * s
    return math.sqrt(float(s2[r:].sum() / s2.sum()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch sees no CUDA device", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False  # lowrank's cuBLAS calls use full float32
    res = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0),
        "date": time.strftime("%Y-%m-%d"),
    }
    n = 1024 if args.quick else 4096
    k2 = 2048 if args.quick else 11008

    # Exact SVD.
    w = spectral_matrix(n, n, 1)
    torch.linalg.svd(spectral_matrix(256, 256, 9), full_matrices=False)  # load the solver's kernels
    ms = timed(lambda: torch.linalg.svd(w, full_matrices=False), reps=2, warmup=0)
    res[f"exact_svd_f32_{n}x{n}_ms"] = ms
    print(f"torch.linalg.svd {n}x{n} f32: {ms:.1f} ms")

    # Randomized rank 64.
    for d, k in [(n, n), (n, k2)]:
        w = spectral_matrix(d, k, 2)
        opt = optimal_error(spectrum(min(d, k)), 64)
        out = {}

        def run():
            out["usv"] = torch.svd_lowrank(w, q=64 + 10, niter=2)

        ms = timed(run, reps=3)
        u, s, v = out["usv"]
        approx = (u[:, :64] * s[:64]) @ v[:, :64].T
        err = float(torch.linalg.norm(w - approx) / torch.linalg.norm(w))
        res[f"randomized_r64_f32_{d}x{k}_ms"] = ms
        res[f"randomized_r64_f32_{d}x{k}_err_over_opt"] = err / opt
        print(f"torch.svd_lowrank rank 64 {d}x{k} f32: {ms:.1f} ms, err/opt {err / opt:.4f}")

    # Apply.
    for d, k in [(n, n), (n, k2)]:
        r = 64
        b_ = torch.randn(d, r, device="cuda")
        a_ = torch.randn(r, k, device="cuda")
        bias = torch.randn(d, device="cuda")
        for batch in (1, 64):
            x = torch.randn(batch, k, device="cuda")
            xh = x.cpu()
            dev = timed(lambda: (x @ a_.T) @ b_.T + bias, reps=200, warmup=10)
            h2h = timed(lambda: ((xh.cuda() @ a_.T) @ b_.T + bias).cpu(), reps=200, warmup=10)
            res[f"apply_f32_n{batch}_{d}x{k}_device_ms"] = dev
            res[f"apply_f32_n{batch}_{d}x{k}_host_ms"] = h2h
            print(f"torch apply n={batch} {d}x{k} r=64: device {dev * 1000:.1f} us, host-to-host {h2h * 1000:.1f} us")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
