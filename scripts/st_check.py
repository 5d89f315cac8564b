#!/usr/bin/env python3
"""Independent check of lowrank's outputs with numpy only (no safetensors lib).

  st_check.py factorized ORIG.safetensors FACT.safetensors
      every NAME.B @ NAME.A is within the recorded relative error of NAME
  st_check.py adapter BASE.safetensors TUNED.safetensors ADAPTER_DIR
      base + (lora_alpha/r)·B·A reproduces tuned within the recorded error
  st_check.py calibrated ORIG.safetensors FACT.safetensors STATS.safetensors
      for every tensor factorize --calibration marked calibrated, the output
      error sqrt(tr(E·C·Eᵀ) / tr(W·C·Wᵀ)), E = W − B·A, computed here from the
      files (about the mean, C − μμᵀ, with the bias checked to have moved by
      E·μ, when it took the mean error) is the recorded output_rel_error; the
      tensors marked plain have no statistics
  st_check.py header FILE.safetensors
      the header is strict JSON, at most 100 MB, and its tensors cover the
      data exactly (prints the number of tensors)

JSON is read strictly: a duplicate key, NaN or Infinity, a lone surrogate or
a header entry key other than dtype, shape and data_offsets is an error (as
lowrank's own reader has it), so that both readers see the same file.
"""
import json, os, struct, sys
import numpy as np

MAX_HEADER = 100_000_000

def _pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r" % k)
        k.encode("utf-8")  # a lone surrogate cannot be encoded
        if isinstance(v, str):
            v.encode("utf-8")
        d[k] = v
    return d

def _constant(c):
    raise ValueError("%s is not a JSON number" % c)

def strict_json(b):
    return json.loads(b.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_constant)

def header(data, path):
    n = struct.unpack("<Q", data[:8])[0]
    assert n <= MAX_HEADER and 8 + n <= len(data), (path, "header length", n)
    h = strict_json(data[8:8 + n])
    assert isinstance(h, dict), path
    meta = h.pop("__metadata__", {})
    assert isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values()), path
    spans = []
    for name, t in h.items():
        assert isinstance(t, dict) and set(t) == {"dtype", "shape", "data_offsets"}, (path, name, t)
        spans.append(tuple(t["data_offsets"]) + (name,))
    pos = 0
    for b, e, name in sorted(spans):
        assert b == pos and e >= b, (path, name, "offsets")
        pos = e
    assert pos == len(data) - 8 - n, (path, "data section")
    return h, meta, 8 + n

def load(path):  # the safetensors format, read from its spec
    data = open(path, "rb").read()
    header_, meta, start = header(data, path)
    out = {}
    for name, t in header_.items():
        b, e = t["data_offsets"]
        raw = data[start + b:start + e]
        if t["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")
        else:
            a = np.frombuffer(raw, {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I64": "<i8"}[t["dtype"]])
        out[name] = a.astype(np.float64).reshape(t["shape"])
    return out, meta

def rel(x, y):
    return np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-300)

def main(mode, *paths):
    checked = 0
    if mode == "factorized":
        orig, _ = load(paths[0])
        fact, meta = load(paths[1])
        for name, m in json.loads(meta["lowrank"])["tensors"].items():
            B, A = fact[name + ".B"], fact[name + ".A"]
            assert B.shape[1] == A.shape[0] == m["rank"], name
            err = rel(B @ A, orig[name])
            assert abs(err - m["rel_error"]) <= 1e-3 * m["rel_error"] + 1e-6, (name, err, m["rel_error"])
            checked += 1
        lr = json.loads(meta["lowrank"])
        shifted = {m.get("bias_shifted") for m in lr["tensors"].values()}
        for name in orig:  # kept dense (maybe in another dtype) or copied
            if name in shifted:  # checked by the calibrated mode
                continue
            if name in lr.get("dense", {}):
                assert rel(fact[name], orig[name]) <= 4e-3, name
            elif name not in lr["tensors"]:
                assert np.array_equal(orig[name], fact[name]), name
    elif mode == "adapter":
        base, _ = load(paths[0])
        tuned, _ = load(paths[1])
        cfg = strict_json(open(os.path.join(paths[2], "adapter_config.json"), "rb").read())
        ad, meta = load(os.path.join(paths[2], "adapter_model.safetensors"))
        assert cfg["peft_type"] == "LORA" and not cfg["use_rslora"] and not cfg["fan_in_fan_out"]
        for mod, m in json.loads(meta["lowrank"])["modules"].items():
            A = ad["base_model.model.%s.lora_A.weight" % mod]
            B = ad["base_model.model.%s.lora_B.weight" % mod]
            r = cfg["rank_pattern"].get(mod, cfg["r"])
            alpha = cfg["alpha_pattern"].get(mod, cfg["lora_alpha"])
            assert A.shape[0] == r == m["rank"] and mod in cfg["target_modules"], mod
            w = mod + ".weight"
            delta_err = rel(alpha / r * (B @ A), tuned[w] - base[w])
            assert delta_err <= m["rel_error"] * (1 + 1e-3) + 1e-5, (mod, delta_err, m["rel_error"])
            checked += 1
    elif mode == "calibrated":
        orig, _ = load(paths[0])
        fact, meta = load(paths[1])
        stats, _ = load(paths[2])
        for name, m in json.loads(meta["lowrank"])["tensors"].items():
            assert "calibrated" in m, name
            if not m["calibrated"]:
                assert name not in stats, name
                continue
            W = orig[name]
            E = W - fact[name + ".B"] @ fact[name + ".A"]
            C = stats[name]
            if m.get("bias_shifted"):
                mu = stats[name + ".input_mean"]
                C = C - np.outer(mu, mu)
                b = m["bias_shifted"]
                moved = fact[b] - orig[b]
                assert rel(moved, E @ mu) <= 1e-4, (b, rel(moved, E @ mu))
            err = np.sqrt(np.trace(E @ C @ E.T) / np.trace(W @ C @ W.T))
            assert abs(err - m["output_rel_error"]) <= 1e-4 * err + 1e-6, (name, err, m["output_rel_error"])
            checked += 1
    elif mode == "header":
        h, _, _ = header(open(paths[0], "rb").read(), paths[0])
        checked = len(h)
    else:
        sys.exit("usage: st_check.py factorized ORIG FACT | adapter BASE TUNED DIR | calibrated ORIG FACT STATS | header FILE")
    assert checked > 0, "nothing checked"
    print("OK: %d tensors checked" % checked)

if __name__ == "__main__":
    main(*sys.argv[1:])
