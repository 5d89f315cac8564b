#!/usr/bin/python3
"""Reference side of the lowrank benchmark (bench/run.sh).

A worker driven by bench/cmd/lowrank-bench over stdin/stdout, one JSON
object per line, so that the Go side and the references run in ONE session,
alternating call by call. It generates the test matrices (.npy, cached),
times numpy / scipy / torch / scikit-learn on them, and evaluates every
result (ours included, read back from .npy files) with the same float64
code, so that the error columns are comparable.
"""
import json
import os
import struct
import sys
import time

import numpy as np

torch = None
sklearn_rsvd = None


def load_refs():
    global torch, sklearn_rsvd
    import torch as _torch
    from sklearn.utils.extmath import randomized_svd as _rsvd

    _torch.set_num_threads(int(os.environ.get("LOWRANK_BENCH_THREADS") or os.cpu_count() or 1))
    torch = _torch
    sklearn_rsvd = _rsvd


def versions():
    import scipy
    import sklearn

    cfg = ""
    try:
        from threadpoolctl import threadpool_info

        cfg = "; ".join(
            "%s %s %s (%s threads) %s"
            % (i.get("internal_api"), i.get("version"), i.get("architecture"), i.get("num_threads"), i.get("filepath"))
            for i in threadpool_info()
        )
    except Exception as e:  # threadpoolctl is optional
        cfg = "threadpoolctl unavailable: %s" % e
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "blas": cfg,
    }


# ---------------------------------------------------------------- data


def generate(path, d, k, dtype, spectrum, seed):
    """Writes a d×k test matrix to path (.npy) unless it exists.

    gaussian: i.i.d. N(0, 1) entries (a slowly decaying Marchenko–Pastur
    spectrum, the hard case for randomized methods).
    decay:    G1·diag(σ)·G2 with Gaussian G1 (d×n), G2 (n×k) scaled to
    near-orthonormal columns/rows and σᵢ = 1/(1+i), plus a 1e-4 noise
    floor: a fast-decaying spectrum like trained weights.
    """
    if os.path.exists(path):
        return
    rng = np.random.default_rng(seed)
    if spectrum == "gaussian":
        w = rng.standard_normal((d, k), dtype=np.float32 if dtype == "float32" else np.float64)
    else:
        n = min(d, k)
        g1 = rng.standard_normal((d, n), dtype=np.float32) / np.float32(np.sqrt(d))
        g2 = rng.standard_normal((n, k), dtype=np.float32) / np.float32(np.sqrt(k))
        s = (1.0 / (1.0 + np.arange(n))).astype(np.float32)
        w = (g1 * s) @ g2
        w += rng.standard_normal((d, k), dtype=np.float32) * np.float32(1e-4 / np.sqrt(max(d, k)))
    w = np.ascontiguousarray(w.astype(dtype))
    tmp = path + ".tmp.npy"
    np.save(tmp, w)
    os.replace(tmp, path)


def spectrum(path, w, top):
    """‖W‖_F² and the top singular values of W, from the eigenvalues of the
    float64 Gram matrix, cached beside the data."""
    cache = path + ".spec.json"
    if os.path.exists(cache):
        with open(cache) as f:
            sp = json.load(f)
        if len(sp["sigma"]) >= top:
            return sp
    w64 = w.astype(np.float64)
    g = w64 @ w64.T if w.shape[0] <= w.shape[1] else w64.T @ w64
    ev = np.linalg.eigvalsh(g)[::-1]
    sigma = np.sqrt(np.maximum(ev[:top], 0.0))
    sp = {"norm2": float(np.sum(w64 * w64)), "sigma": sigma.tolist()}
    with open(cache, "w") as f:
        json.dump(sp, f)
    return sp


def rel_error(w, b, a):
    """‖W − B·A‖_F in float64, in row blocks to bound memory."""
    b = b.astype(np.float64)
    a = a.astype(np.float64)
    tot = 0.0
    for i in range(0, w.shape[0], 1024):
        r = w[i : i + 1024].astype(np.float64) - b[i : i + 1024] @ a
        tot += float(np.sum(r * r))
    return np.sqrt(tot)


# ---------------------------------------------------------------- workloads


class State:
    path = None
    w = None  # numpy
    wt = None  # torch (shares memory)
    factors = None  # (B, A) numpy for apply
    factors_t = None


st = State()


def load(path):
    if st.path != path:
        st.w = None
        st.wt = None
        st.w = np.load(path)
        st.wt = torch.from_numpy(st.w)
        st.path = path


def run_once(lib, op, r, eval_=False, n=1):
    """Runs one timed call; returns seconds, and the result when eval_."""
    w, wt = st.w, st.wt
    if op == "svd":
        if lib == "numpy":
            t = time.perf_counter()
            u, s, vt = np.linalg.svd(w, full_matrices=False)
            dt = time.perf_counter() - t
        elif lib == "scipy":
            import scipy.linalg

            t = time.perf_counter()
            u, s, vt = scipy.linalg.svd(w, full_matrices=False, lapack_driver="gesdd", check_finite=False)
            dt = time.perf_counter() - t
        else:
            t = time.perf_counter()
            u, s, vt = torch.linalg.svd(wt, full_matrices=False)
            dt = time.perf_counter() - t
            u, s, vt = u.numpy(), s.numpy(), vt.numpy()
        return dt, (u * s, vt) if eval_ else None
    if op == "rsvd":
        l = r + 10
        if lib == "torch":
            torch.manual_seed(0)
            t = time.perf_counter()
            u, s, v = torch.svd_lowrank(wt, q=l, niter=2)
            dt = time.perf_counter() - t
            u, s, vt = u[:, :r].numpy(), s[:r].numpy(), v[:, :r].T.numpy()
        else:
            t = time.perf_counter()
            u, s, vt = sklearn_rsvd(w, r, n_oversamples=10, n_iter=2, random_state=0)
            dt = time.perf_counter() - t
        return dt, (u * s, vt) if eval_ else None
    raise ValueError("unknown op %r" % op)


def time_apply(lib, n, reps):
    """Median seconds per call of y = B·(A·x) for one vector (n = 1) or
    Y = (X·Aᵀ)·Bᵀ for a batch, over reps samples of several calls each."""
    b, a = st.factors
    bt, at = st.factors_t
    k = a.shape[1]
    rng = np.random.default_rng(5)
    if n == 1:
        x = rng.standard_normal(k).astype(a.dtype)
        xt = torch.from_numpy(x)
        f = {"numpy": lambda: b @ (a @ x), "torch": lambda: torch.mv(bt, torch.mv(at, xt))}[lib]
    else:
        x = rng.standard_normal((n, k)).astype(a.dtype)
        xt = torch.from_numpy(x)
        f = {"numpy": lambda: (x @ a.T) @ b.T, "torch": lambda: (xt @ at.T) @ bt.T}[lib]
    f()
    t = time.perf_counter()
    f()
    one = max(time.perf_counter() - t, 1e-7)
    inner = max(1, int(0.02 / one))
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            f()
        samples.append((time.perf_counter() - t) / inner)
    samples.sort()
    return samples[len(samples) // 2], samples


# ---------------------------------------------------------------- whole model


def read_safetensors(path):
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        base = 8 + hlen
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": np.float32, "F64": np.float64}[info["dtype"]]
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[base + lo : base + hi], dtype=dt).reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for name, t in tensors.items():
        t = np.ascontiguousarray(t)
        b = t.tobytes()
        header[name] = {"dtype": {np.float32: "F32", np.float64: "F64"}[t.dtype.type], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def gen_model(path, layers, d, k, seed):
    """A model-like safetensors file: per layer a d×k and a k×d weight with
    decaying spectra, and a bias vector (kept dense)."""
    if os.path.exists(path):
        return
    rng = np.random.default_rng(seed)
    t = {}
    for i in range(layers):
        for name, (m, n) in (("up", (d, k)), ("down", (k, d))):
            r = min(m, n)
            g1 = rng.standard_normal((m, r), dtype=np.float32) / np.float32(np.sqrt(m))
            g2 = rng.standard_normal((r, n), dtype=np.float32) / np.float32(np.sqrt(n))
            s = (1.0 / (1.0 + np.arange(r))).astype(np.float32)
            t["layers.%d.%s.weight" % (i, name)] = (g1 * s) @ g2
        t["layers.%d.bias" % i] = rng.standard_normal(d).astype(np.float32)
    write_safetensors(path, t)


def model_ref(path, out, r):
    """torch.svd_lowrank on every 2-D tensor of the file, written as
    NAME.B / NAME.A like `lowrank factorize` does."""
    t = time.perf_counter()
    res = {}
    for name, w in read_safetensors(path).items():
        if w.ndim != 2:
            res[name] = np.array(w)
            continue
        torch.manual_seed(0)
        u, s, v = torch.svd_lowrank(torch.from_numpy(np.array(w)), q=r + 10, niter=2)
        res[name + ".B"] = (u[:, :r] * s[:r]).numpy()
        res[name + ".A"] = v[:, :r].T.contiguous().numpy()
    write_safetensors(out, res)
    return time.perf_counter() - t


def sgemm_peak(n):
    """This machine's float32 GEMM rate in flop/s: numpy (OpenBLAS, the
    threads of the run) on n×n·n×n, best of three after a warm-up."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = a @ b
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


# ---------------------------------------------------------------- protocol


def handle(req):
    cmd = req["cmd"]
    if cmd == "versions":
        return versions()
    if cmd == "sgemm_peak":
        return {"flops": sgemm_peak(req.get("n", 4096))}
    if cmd == "gen":
        generate(req["path"], req["d"], req["k"], req["dtype"], req["spectrum"], req["seed"])
        out = {}
        if req.get("top"):
            load(req["path"])
            out = spectrum(req["path"], st.w, req["top"])
        return out
    if cmd == "load":
        load(req["path"])
        return {}
    if cmd == "run":
        load(req["path"])
        dt, res = run_once(req["lib"], req["op"], req.get("r", 0), eval_=req.get("eval", False))
        out = {"seconds": dt}
        if res is not None:
            out["err"] = rel_error(st.w, *res)
        return out
    if cmd == "eval":
        load(req["path"])
        b = np.load(req["b"])
        a = np.load(req["a"])
        return {"err": rel_error(st.w, b, a)}
    if cmd == "factors":
        st.factors = (np.load(req["b"]), np.load(req["a"]))
        st.factors_t = tuple(torch.from_numpy(x) for x in st.factors)
        return {}
    if cmd == "apply":
        med, samples = time_apply(req["lib"], req["n"], req.get("reps", 7))
        return {"seconds": med, "samples": samples}
    if cmd == "gen_model":
        gen_model(req["path"], req["layers"], req["d"], req["k"], req["seed"])
        return {}
    if cmd == "model":
        return {"seconds": model_ref(req["path"], req["out"], req["r"])}
    if cmd == "quit":
        sys.exit(0)
    raise ValueError("unknown command %r" % cmd)


def main():
    load_refs()
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            resp = {"ok": True, **handle(json.loads(line))}
        except SystemExit:
            raise
        except Exception as e:  # reported to the Go side, which stops
            resp = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps(resp) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
