#!/usr/bin/env python3
"""Independent check of lowrank's outputs with numpy only (no safetensors lib).

  st_check.py factorized ORIG.safetensors FACT.safetensors
      every NAME.B @ NAME.A is within the recorded relative error of NAME
  st_check.py adapter BASE.safetensors TUNED.safetensors ADAPTER_DIR
      base + (lora_alpha/r)·B·A reproduces tuned within the recorded error
"""
import json, os, struct, sys
import numpy as np

def load(path):  # the safetensors format, read from its spec
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header, start = json.loads(data[8:8 + n]), 8 + n
    meta, out = header.pop("__metadata__", {}), {}
    for name, t in header.items():
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
        for name in orig:  # kept dense (maybe in another dtype) or copied
            if name in lr.get("dense", {}):
                assert rel(fact[name], orig[name]) <= 4e-3, name
            elif name not in lr["tensors"]:
                assert np.array_equal(orig[name], fact[name]), name
    elif mode == "adapter":
        base, _ = load(paths[0])
        tuned, _ = load(paths[1])
        cfg = json.load(open(os.path.join(paths[2], "adapter_config.json")))
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
    else:
        sys.exit("usage: st_check.py factorized ORIG FACT | adapter BASE TUNED DIR")
    assert checked > 0, "nothing checked"
    print("OK: %d tensors checked" % checked)

if __name__ == "__main__":
    main(*sys.argv[1:])
