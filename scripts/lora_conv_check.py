#!/usr/bin/env python3
"""Independent check of lowrank's conv (LoCon) and embedding LoRA, numpy only.

The adapter is applied as the layers apply it, not as lowrank computes it:
a conv LoRA as two convolutions (lora_down, k_h×k_w, then lora_up, 1×1),
each a sliding-window sum over a zero-padded input written out here; an
embedding LoRA as PEFT's Embedding layer does, a lookup of token ids in
lora_embedding_A (r × vocab) followed by lora_embedding_B (hidden × r).

  lora_conv_check.py extracted BASE.safetensors TUNED.safetensors ADAPTER
      for every conv and embedding module of ADAPTER (a PEFT folder or a
      kohya .safetensors file), the layer's output change tuned − base on
      random inputs is the adapter's output within the relative error the
      adapter records for the module
  lora_conv_check.py merged BASE.safetensors ADAPTER MERGED.safetensors
      for every conv and embedding module, merged − base on random inputs
      is the adapter's output (to float32 rounding)

Files are read by st_check.py's reader (the safetensors format from its
spec). Prints "OK: N modules checked".
"""
import json, os, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_check import load, rel, strict_json  # noqa: E402

rng = np.random.default_rng(0)


def conv2d(x, w):
    """y[n,o,i,j] = sum over c, a, b of w[o,c,a,b]·x[n, c, i+a−p, j+b−q],
    zero padding p = (k_h−1)/2, q = (k_w−1)/2 (a "same" convolution)."""
    o, c, kh, kw = w.shape
    n, c2, h, wd = x.shape
    assert c == c2, (w.shape, x.shape)
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = np.zeros((n, c, h + kh - 1, wd + kw - 1))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    y = np.zeros((n, o, h, wd))
    for a in range(kh):
        for b in range(kw):
            for oi in range(o):
                for ci in range(c):
                    y[:, oi] += w[oi, ci, a, b] * xp[:, ci, a:a + h, b:b + wd]
    return y


def modules(path):
    """(kind, module, A, B, scale, record) for each conv and embedding
    module of the adapter at path."""
    if os.path.isdir(path):
        cfg = strict_json(open(os.path.join(path, "adapter_config.json"), "rb").read())
        ad, meta = load(os.path.join(path, "adapter_model.safetensors"))
        assert cfg["peft_type"] == "LORA" and not cfg["use_rslora"]
        for mod, m in json.loads(meta["lowrank"])["modules"].items():
            r = cfg["rank_pattern"].get(mod, cfg["r"])
            scale = cfg["alpha_pattern"].get(mod, cfg["lora_alpha"]) / r
            assert mod in cfg["target_modules"], mod
            p = "base_model.model." + mod
            if p + ".lora_embedding_A" in ad:
                yield "embedding", mod, ad[p + ".lora_embedding_A"], ad[p + ".lora_embedding_B"], scale, m
            elif ad[p + ".lora_A.weight"].ndim == 4:
                yield "conv", mod, ad[p + ".lora_A.weight"], ad[p + ".lora_B.weight"], scale, m
        return
    ad, meta = load(path)
    lr = json.loads(meta["lowrank"])
    for mod, m in lr["modules"].items():
        stem = mod
        for p in ("model.diffusion_model.", "cond_stage_model.transformer."):  # as kohya names them
            if stem.startswith(p) and stem != p:
                stem = stem[len(p):]
                break
        k = lr["kohya_prefix"] + "_" + stem.replace(".", "_")
        down, up = ad[k + ".lora_down.weight"], ad[k + ".lora_up.weight"]
        scale = float(ad[k + ".alpha"]) / down.shape[0] if k + ".alpha" in ad else 1.0
        if down.ndim == 4:
            yield "conv", mod, down, up, scale, m


def change_and_lora(kind, W0, W1, A, B, scale):
    """On random inputs: the change of the layer's output from weight W0
    to W1, and the adapter's output."""
    if kind == "conv":
        assert A.shape[1:] == W0.shape[1:] and B.shape == (W0.shape[0], A.shape[0], 1, 1), (A.shape, B.shape, W0.shape)
        x = rng.standard_normal((2, W0.shape[1], 7, 6))
        return conv2d(x, W1) - conv2d(x, W0), scale * conv2d(conv2d(x, A), B)
    assert A.shape == (B.shape[1], W0.shape[0]) and B.shape[0] == W0.shape[1], (A.shape, B.shape, W0.shape)
    ids = rng.integers(0, W0.shape[0], 16)  # token ids
    return W1[ids] - W0[ids], scale * (A.T[ids] @ B.T)


def main(mode, *paths):
    checked = 0
    if mode == "extracted":
        base, _ = load(paths[0])
        tuned, _ = load(paths[1])
        for kind, mod, A, B, scale, m in modules(paths[2]):
            w = mod + ".weight"
            change, lora = change_and_lora(kind, base[w], tuned[w], A, B, scale)
            err = rel(lora, change)
            # The recorded error is of the weights; on the outputs it is
            # weighted by how often each tap meets the (zero-padded) input.
            assert err <= 2 * m["rel_error"] + 1e-5, (mod, kind, err, m["rel_error"])
            checked += 1
    elif mode == "merged":
        base, _ = load(paths[0])
        merged, _ = load(paths[2])
        for kind, mod, A, B, scale, m in modules(paths[1]):
            w = mod + ".weight"
            change, lora = change_and_lora(kind, base[w], merged[w], A, B, scale)
            err = rel(change, lora)
            assert err <= 1e-4, (mod, kind, err)
            checked += 1
    else:
        sys.exit("usage: lora_conv_check.py extracted BASE TUNED ADAPTER | merged BASE ADAPTER MERGED")
    assert checked > 0, "nothing checked"
    print("OK: %d modules checked" % checked)


if __name__ == "__main__":
    main(*sys.argv[1:])
