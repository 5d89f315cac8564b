#!/usr/bin/env python3
"""Merges lowrank's GPU benchmark output (go test -bench lines of
gpu/bench_test.go) and torch's figures (scripts/gpu_torch_bench.py --json)
into the Markdown tables of scripts/gpu-check.sh's results: randomized
factorization at F32/TF32/BF16 with error/optimal, apply with the fused
kernel on and off, and the exact SVD per solver with the rule's choice.
Needs only Python 3 (no torch): without the JSON the torch columns read "–".

Usage: gpu_bench_table.py GO_BENCH_LOG [TORCH_JSON]
"""
import json
import re
import sys

LINE = re.compile(r"^Benchmark(\w+)/(\S+?)(?:-\d+)?\s+(\d+)\s+([\d.e+]+) ns/op(.*)$")


def parse_go(path):
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            bench, name, _, ns, rest = m.groups()
            metrics = {"wall-ms": float(ns) / 1e6}
            fields = rest.split()
            for v, unit in zip(fields[0::2], fields[1::2]):
                try:
                    metrics[unit] = float(v)
                except ValueError:
                    pass
            out[(bench, name)] = metrics
    return out


def ms(v):
    if v is None:
        return "–"
    if v < 1:
        return f"{v * 1000:.1f} µs"
    if v < 1000:
        return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms"
    return f"{v / 1000:.2f} s"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def num(v, fmt="{:.4f}"):
    return "–" if v is None else fmt.format(v)


def area(shape):
    d, k = shape.split("x")
    return int(d) * int(k)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    go = parse_go(sys.argv[1])
    torch = {"records": []}
    if len(sys.argv) > 2:
        try:
            with open(sys.argv[2]) as f:
                torch = json.load(f)
        except (OSError, ValueError) as e:
            print(f"(no torch figures: {e})\n")
    trec = torch.get("records", [])

    def t_find(**kw):
        for r in trec:
            if all(r.get(k) == v for k, v in kw.items()):
                return r
        return None

    def g(bench, name, metric="gpu-ms/op"):
        m = go.get((bench, name))
        return None if m is None else m.get(metric)

    if torch.get("torch"):
        print(f"torch {torch.get('torch')} (CUDA {torch.get('cuda')}) on {torch.get('gpu')}, {torch.get('date')}.")
    else:
        print("torch: not available on this machine (no torch columns).")
    print()

    # Randomized.
    print("### Randomized factorization (float32, oversampling 10, 2 power iterations)")
    print()
    print("lowrank: `Factorize(Rank(r), Randomized, WithSketchPrecision(p))`, host matrix in, host factors out "
          "(device time of the whole call, upload included). torch: `svd_lowrank(q=r+10, niter=2)` with W on the "
          "device, and host-to-host (W uploaded, factors downloaded). err/opt: relative error over the Eckart–Young "
          "optimum. ours/torch compares our best reduced sketch with torch's float32 on the device and "
          "host-to-host.")
    print()
    print("| shape | r | ours f32 | ours tf32 | ours bf16 | torch f32 (device · host) | torch tf32 (device · host) "
          "| err/opt ours f32 · tf32 · bf16 | err/opt torch f32 · tf32 | tf32 speed-up | ours best/torch f32 device · host |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = sorted({(n.split("/")[2], n.split("/")[0][1:]) for (b, n) in go if b == "Randomized"} |
                  {(r["shape"], str(r["r"])) for r in trec if r["kind"] == "randomized"},
                  key=lambda x: (x[0], int(x[1])))
    for shape, r in rows:
        o = {p: g("Randomized", f"r{r}/{p}/{shape}") for p in ("f32", "tf32", "bf16")}
        e = {p: g("Randomized", f"r{r}/{p}/{shape}", "err/opt") for p in ("f32", "tf32", "bf16")}
        red = {p: g("Randomized", f"r{r}/{p}/{shape}", "reduced") for p in ("tf32", "bf16")}
        tf = t_find(kind="randomized", r=int(r), prec="f32", shape=shape)
        tt = t_find(kind="randomized", r=int(r), prec="tf32", shape=shape)
        best = min([v for v in (o["tf32"], o["bf16"]) if v is not None], default=None)
        mark = {p: (" (f32 rerun)" if red[p] == 0 else "") for p in red}
        print(f"| {shape} | {r} | {ms(o['f32'])} | {ms(o['tf32'])}{mark['tf32']} | {ms(o['bf16'])}{mark['bf16']} "
              f"| {ms(tf and tf['ms'])} · {ms(tf and tf['host_ms'])} | {ms(tt and tt['ms'])} · {ms(tt and tt['host_ms'])} "
              f"| {num(e['f32'])} · {num(e['tf32'])} · {num(e['bf16'])} "
              f"| {num(tf and tf['err_over_opt'])} · {num(tt and tt['err_over_opt'])} "
              f"| {ratio(o['f32'], best)} | {ratio(best, tf and tf['ms'])} · {ratio(best, tf and tf['host_ms'])} |")
    print()

    # Apply.
    lat = t_find(kind="launch")
    print("### Apply, rank 64, float32, host-to-host")
    print()
    print("lowrank: `Applier.Apply` (x uploaded, y downloaded), through cuBLAS and through the fused kernel "
          "(batches up to 64; above, the fused setting runs cuBLAS). torch: `(x @ A.T) @ B.T + b`, on the device "
          "and host-to-host. " + (f"One tiny kernel launch (1-element add_, back to back): {ms(lat['ms'])}."
                                  if lat else "Kernel launch latency: not measured (no torch)."))
    print()
    print("| shape | n | ours cuBLAS | ours fused | fused ran | torch device | torch host-to-host | ours best/torch host | one vector / launch |")
    print("|---|---|---|---|---|---|---|---|---|")
    arows = sorted({(n.split("/")[2], int(n.split("/")[1][2:])) for (b, n) in go if b == "Apply"} |
                   {(r["shape"], r["n"]) for r in trec if r["kind"] == "apply"})
    for shape, n in arows:
        cb = g("Apply", f"cublas/n={n}/{shape}")
        fu = g("Apply", f"fused/n={n}/{shape}")
        ran = g("Apply", f"fused/n={n}/{shape}", "fused")
        t = t_find(kind="apply", n=n, shape=shape)
        best = min([v for v in (cb, fu) if v is not None], default=None)
        launch = ratio(best, lat["ms"]) if (lat and n == 1) else ""
        print(f"| {shape} | {n} | {ms(cb)} | {ms(fu)} | {'yes' if ran == 1 else ('no' if ran == 0 else '–')} "
              f"| {ms(t and t['ms'])} | {ms(t and t['host_ms'])} | {ratio(best, t and t['host_ms'])} | {launch} |")
    print()

    # Exact SVD.
    print("### Exact SVD (thin, upload excluded)")
    print()
    print("Device time per solver; * marks the solver lowrank's rule picks (`gpu.ChooseSolver`: gesvdj up to "
          "1024, gesvd above; gesvdp never automatically). torch: `torch.linalg.svd(full_matrices=False)` with its "
          "default driver. – : not run (out of the time budget, or gesvdj above 4096).")
    print()
    print("| shape | type | gesvd | gesvdj | gesvdp | fastest | torch | rule's choice/torch |")
    print("|---|---|---|---|---|---|---|---|")
    erows = sorted({(n.split("/")[2], n.split("/")[1]) for (b, n) in go if b == "ExactSVD"} |
                   {(r["shape"], r["dtype"]) for r in trec if r["kind"] == "svd"},
                   key=lambda x: (area(x[0]), x[0], x[1]))
    for shape, dt in erows:
        cells, times, auto = [], {}, None
        for s in ("gesvd", "gesvdj", "gesvdp"):
            v = g("ExactSVD", f"{s}/{dt}/{shape}")
            a = g("ExactSVD", f"{s}/{dt}/{shape}", "auto")
            if v is not None:
                times[s] = v
            if a == 1:
                auto = s
            cells.append(ms(v) + (" *" if a == 1 else ""))
        fastest = min(times, key=times.get) if times else "–"
        t = t_find(kind="svd", dtype=dt, shape=shape)
        print(f"| {shape} | {dt} | {' | '.join(cells)} | {fastest} | {ms(t and t['ms'])} "
              f"| {ratio(times.get(auto), t and t['ms'])} |")
    skipped = torch.get("skipped") or []
    if skipped:
        print()
        print("torch problems not run (deadline): " + ", ".join(skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
