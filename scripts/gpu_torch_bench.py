#!/usr/bin/env python3
"""Side-by-side figures for lowrank's GPU benchmarks (gpu/bench_test.go),
computed with torch on the same GPU; run by scripts/gpu-check.sh, which
merges both into one table (scripts/gpu_bench_table.py).

The problems match gpu/bench_test.go, in the same order (so that a deadline
cuts the same, least important, ones):
  * randomized rank r in {16, 64, 256} of 4096x4096, 4096x11008 and
    8192x8192 float32 matrices with the spectrum sigma_i = exp(-i/64) + 1e-3:
    torch.svd_lowrank(q = r + 10, niter = 2) (lowrank's defaults) with
    float32 matmuls and with TF32 matmuls (torch.backends.cuda.matmul.
    allow_tf32; torch has no bfloat16 svd_lowrank), W on the device and
    host-to-host (W uploaded and the factors downloaded, as lowrank's
    Factorize does), with the relative Frobenius error over the optimal one;
  * applying rank-64 factors, y = (x @ A.T) @ B.T + b, for batches of 1, 8,
    64 and 512 vectors at 4096x4096 and 4096x11008, on the device and
    host-to-host; and the latency of one tiny kernel launch (a 1-element
    add_), the yardstick of the one-vector apply;
  * exact thin SVD (torch.linalg.svd, torch's default cuSOLVER driver) of
    float32 and float64 matrices from 1024^2 to 8192^2, and 8192x1024 and
    1024x8192.
Times are CUDA-event milliseconds (median of several runs).

Usage: gpu_torch_bench.py [--json FILE] [--quick] [--deadline UNIX_SECONDS] [--cpu]

--cpu runs the same code on the CPU with wall-clock times (with --quick: a
check of this script on a machine without a GPU; the times mean nothing).
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch


DEV = "cuda"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def timed(fn, reps, warmup=1):
    if DEV != "cuda":
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)
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


def spectral_matrix(d, k, seed, dtype=torch.float32):
    g = torch.Generator(device=DEV).manual_seed(seed)
    p = min(d, k)
    u, _ = torch.linalg.qr(torch.randn(d, p, device=DEV, generator=g, dtype=dtype))
    v, _ = torch.linalg.qr(torch.randn(k, p, device=DEV, generator=g, dtype=dtype))
    s = spectrum(p).to(DEV, dtype)
    return (u * s) @ v.T


def optimal_error(s, r):
    s2 = s * s
    return math.sqrt(float(s2[r:].sum() / s2.sum()))


class Budget:
    """Skips a problem whose predicted time (the series' last time scaled by
    the flops) would end past the deadline."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.last = {}

    def fits(self, series, flops):
        if not self.deadline:
            return True
        left = self.deadline - time.time()
        if left < 1:
            return False
        if series in self.last:
            sec, f = self.last[series]
            return sec * flops / f <= left
        return True

    def record(self, series, seconds, flops):
        self.last[series] = (seconds, flops)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    ap.add_argument("--deadline", type=float, default=0, help="Unix time by which to stop starting problems")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (a check of the script; times mean nothing)")
    args = ap.parse_args()
    global DEV
    if args.cpu:
        DEV = "cpu"
    elif not torch.cuda.is_available():
        print("torch sees no CUDA device", file=sys.stderr)
        return 1
    res = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu (dry run)",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "records": [],
    }
    rec = res["records"]
    skipped = []
    bd = Budget(args.deadline)

    def save():
        if args.json:
            res["skipped"] = skipped
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)

    quick = args.quick
    rshapes = [(256, 256), (200, 320)] if quick else [(4096, 4096), (4096, 11008), (8192, 8192)]
    ranks = [16] if quick else [16, 64, 256]

    # Randomized.
    for d, k in rshapes:
        w = None
        for r in ranks:
            opt = optimal_error(spectrum(min(d, k)), r)
            for prec in ("f32", "tf32"):
                name = f"randomized r{r} {prec} {d}x{k}"
                flops = d * k * (r + 10)
                if not bd.fits("randomized", flops):
                    skipped.append(name)
                    continue
                if w is None:
                    w = spectral_matrix(d, k, 2)
                    wh = w.cpu()
                    if DEV == "cuda":
                        wh = wh.pin_memory()
                torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
                out = {}

                def run():
                    out["usv"] = torch.svd_lowrank(w, q=r + 10, niter=2)

                def run_host():
                    u, s, v = torch.svd_lowrank(wh.to(DEV, non_blocking=True), q=r + 10, niter=2)
                    out["host"] = ((u[:, :r] * s[:r]).cpu(), v[:, :r].T.cpu())

                t0 = time.time()
                ms = timed(run, reps=3)
                ms_host = timed(run_host, reps=3)
                bd.record("randomized", (time.time() - t0) / 8, flops)
                torch.backends.cuda.matmul.allow_tf32 = False
                u, s, v = out["usv"]
                approx = (u[:, :r] * s[:r]) @ v[:, :r].T
                err = float(torch.linalg.norm(w - approx) / torch.linalg.norm(w))
                rec.append({"kind": "randomized", "r": r, "prec": prec, "shape": f"{d}x{k}", "ms": ms,
                            "host_ms": ms_host, "err_over_opt": err / opt})
                print(f"torch.svd_lowrank r={r} {prec} {d}x{k}: {ms:.2f} ms on the device, {ms_host:.2f} ms host-to-host, "
                      f"err/opt {err / opt:.4f}", flush=True)
                save()
        del w

    # Launch latency and apply.
    one = torch.zeros(1, device=DEV)
    lat = timed(lambda: [one.add_(1) for _ in range(1000)], reps=5) / 1000
    rec.append({"kind": "launch", "ms": lat})
    print(f"one tiny kernel (1-element add_): {lat * 1000:.2f} us", flush=True)
    ashapes = [(256, 320)] if quick else [(4096, 4096), (4096, 11008)]
    for d, k in ashapes:
        r = 64
        b_ = torch.randn(d, r, device=DEV)
        a_ = torch.randn(r, k, device=DEV)
        bias = torch.randn(d, device=DEV)
        for n in (1, 8, 64, 512):
            name = f"apply n={n} {d}x{k}"
            if args.deadline and time.time() > args.deadline - 1:
                skipped.append(name)
                continue
            x = torch.randn(n, k, device=DEV)
            xh = x.cpu()
            if DEV == "cuda":
                xh = xh.pin_memory()
            dev = timed(lambda: (x @ a_.T) @ b_.T + bias, reps=200, warmup=10)
            h2h = timed(lambda: ((xh.to(DEV, non_blocking=True) @ a_.T) @ b_.T + bias).cpu(), reps=100, warmup=10)
            rec.append({"kind": "apply", "n": n, "shape": f"{d}x{k}", "ms": dev, "host_ms": h2h})
            print(f"torch apply n={n} {d}x{k} r=64: device {dev * 1000:.1f} us, host-to-host {h2h * 1000:.1f} us", flush=True)
        save()

    # Exact SVD.
    eshapes = [(48, 48), (96, 32)] if quick else [(1024, 1024), (2048, 2048), (8192, 1024), (1024, 8192), (4096, 4096), (8192, 8192)]
    torch.linalg.svd(spectral_matrix(256, 256, 9), full_matrices=False)  # load the solver's kernels
    for d, k in eshapes:
        for dt, tname in ((torch.float32, "f32"), (torch.float64, "f64")):
            name = f"svd {tname} {d}x{k}"
            flops = d * k * min(d, k)
            series = f"svd {tname}"
            if not bd.fits(series, flops):
                skipped.append(name)
                continue
            w = spectral_matrix(d, k, 1, dt)
            t0 = time.time()
            ms = timed(lambda: torch.linalg.svd(w, full_matrices=False), reps=1, warmup=0)
            bd.record(series, time.time() - t0, flops)
            rec.append({"kind": "svd", "dtype": tname, "shape": f"{d}x{k}", "ms": ms})
            print(f"torch.linalg.svd {d}x{k} {tname}: {ms:.1f} ms", flush=True)
            del w
            save()
    if skipped:
        print("not run (deadline): " + ", ".join(skipped), flush=True)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
