#!/usr/bin/env python3
"""Collect the input statistics `lowrank factorize --calibration` reads.

For every nn.Linear (and nn.Conv2d) of a PyTorch model, forward hooks
accumulate, over a calibration set, the second moment of the inputs the
layer sees,

    C = XᵀX / n        (k×k, float64; X holds the n inputs as rows)

and their mean μ, and write them to a safetensors file, each C under the
name of the weight it calibrates (`model.layers.0.mlp.down_proj.weight`) and
μ under that name + ".input_mean" (for a layer with a bias, lowrank then
factorizes about the mean and shifts the bias: WithInputMoments). For a Conv2d the inputs
are its unfolded patches (torch.nn.functional.unfold), so that C is
(in·kh·kw)×(in·kh·kw), the k of the weight reshaped to out×(in·kh·kw).

Layers that receive the very same input tensor one after the other and
take the same rows from it (a transformer's q/k/v projections, gate/up;
not a 3×3 conv and a 1×1 shortcut conv) share one accumulator; each still
gets its entry. A conv's patches are padded as the conv pads (zeros,
reflect, replicate, circular; padding "same" and "valid" too).

Usage with a Hugging Face transformers model (needs `transformers`):

    python3 scripts/collect_stats.py --model MODEL_DIR_OR_ID --text calib.txt \
        --samples 128 --seq-len 512 -o stats.safetensors

and from Python, for any model:

    from collect_stats import collect, save
    stats, counts = collect(model, batches)   # batches: an iterable of inputs
    save("stats.safetensors", stats, counts)

The file is written with the `safetensors` package when it is installed and
with numpy and json otherwise (the format is an 8-byte header length, a
JSON header, the raw little-endian data); either way it appears whole or
not at all (a temporary file, renamed).

Memory: one float64 k×k accumulator per distinct input, on --stats-device
(the model's device by default): for a 7B LLaMA, about 1.4 GB per decoder
layer. --include REGEX collects a subset of the layers per run.
"""
import argparse
import json
import os
import re
import struct
import sys
import tempfile

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # save() and load() work without torch
    torch = None


class _Acc:
    """XᵀX and the count of rows, for one distinct input."""

    def __init__(self, k, device):
        self.xtx = torch.zeros(k, k, dtype=torch.float64, device=device)
        self.sum = torch.zeros(k, dtype=torch.float64, device=device)
        self.n = 0


def _rows(module, x):
    """The layer's inputs as the rows of an n×k matrix."""
    if isinstance(module, torch.nn.Conv2d):
        if x.dim() == 3:
            x = x.unsqueeze(0)
        # Pad as the conv does (padding "same"/"valid" or numbers; zeros,
        # reflect, replicate or circular), then take the patches.
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        x = F.pad(x, module._reversed_padding_repeated_twice, mode=mode)
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation,
                        padding=0, stride=module.stride)  # N×(C·kh·kw)×L
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return x.reshape(-1, x.shape[-1])


def _kind(module):
    """What _rows does with a layer's input: layers fed the same tensor
    share an accumulator only when this is the same (a 3×3 conv and a 1×1
    shortcut conv of one input see different rows)."""
    if isinstance(module, torch.nn.Conv2d):
        return ("conv", module.kernel_size, module.stride, module.padding,
                module.dilation, module.padding_mode)
    return ("linear",)


def collect(model, batches, include=None, stats_device=None, forward=None, log=None):
    """Run model over batches and return {weight name: C (numpy float64, k×k),
    weight name + ".input_mean": μ (length k)}.

    batches: an iterable of inputs; forward(model, batch) runs one (default:
    model(batch), or model(**batch) for a dict). include: a regex on module
    names. stats_device: where the accumulators live (default: each layer's
    device). Also returns the number of input rows behind each C, as
    {weight name: n}.
    """
    if torch is None:
        raise SystemExit("collect_stats: PyTorch is needed to collect statistics (apt-get install python3-torch)")
    pattern = re.compile(include) if include else None
    accs, owner, hooks, skipped = {}, {}, [], []
    last = {}  # the input of the layer hooked last, held so that its memory cannot be reused

    def hook(name):
        def fn(module, inputs, output):
            x = inputs[0].detach()
            prev = last.get("x")
            same = prev is not None and last.get("kind") == _kind(module) and (prev is x or (
                prev.data_ptr() == x.data_ptr() and prev.shape == x.shape and prev.stride() == x.stride()))
            if name not in owner:
                # Decided on the first batch: a layer fed the very tensor
                # the layer before it got (q/k/v, gate/up) shares its sums.
                owner[name] = last["owner"] if same else name
            last["x"], last["owner"], last["kind"] = x, owner[name], _kind(module)
            if owner[name] != name:
                return
            rows = _rows(module, x)
            if name not in accs:
                accs[name] = _Acc(rows.shape[1], stats_device or rows.device)
            acc = accs[name]
            r = rows.to(acc.xtx.device, torch.float64)
            acc.xtx.addmm_(r.T, r)
            acc.sum += r.sum(0)
            acc.n += r.shape[0]
        return fn

    for name, module in model.named_modules():
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        if pattern and not pattern.search(name):
            continue
        if isinstance(module, torch.nn.Conv2d) and module.groups != 1:
            skipped.append(name + " (grouped convolution)")
            continue
        hooks.append(module.register_forward_hook(hook(name)))
    if not hooks:
        raise SystemExit("collect_stats: no nn.Linear or nn.Conv2d layer%s" %
                         (" matches --include %r" % include if include else ""))
    for name in skipped:
        print("collect_stats: skipped %s" % name, file=sys.stderr)
    forward = forward or (lambda m, b: m(**b) if isinstance(b, dict) else m(b))
    model.eval()
    try:
        with torch.no_grad():
            for i, b in enumerate(batches, 1):
                last.clear()
                forward(model, b)
                if log:
                    log(i)
    finally:
        last.clear()
        for h in hooks:
            h.remove()
    stats, counts = {}, {}
    for name, other in owner.items():
        acc = accs[other]
        if acc.n == 0:
            continue
        stats[name + ".weight"] = (acc.xtx / acc.n).cpu().numpy()
        stats[name + ".weight.input_mean"] = (acc.sum / acc.n).cpu().numpy()
        counts[name + ".weight"] = acc.n
    return stats, counts


_DT = {np.dtype("float64"): "F64", np.dtype("float32"): "F32"}


def save(path, stats, counts=None, dtype="F64", source="", metadata=None):
    """Write {name: array} as a safetensors file in dtype (F64 or F32), atomically.

    The metadata records what the file holds and how many input rows are
    behind each matrix (counts), unless metadata gives other entries.
    """
    np_dtype = {"F64": "<f8", "F32": "<f4"}[dtype]
    arrays = {n: np.ascontiguousarray(a, dtype=np_dtype) for n, a in sorted(stats.items())}
    meta = metadata if metadata is not None else {"lowrank_calibration": json.dumps({
        "kind": "second_moment XᵀX/n",
        "samples": counts or {},
        "source": source,
    })}
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".collect_stats-", dir=d)
    os.close(fd)
    try:
        try:
            from safetensors.numpy import save_file
        except ImportError:
            save_file = None
        if save_file is not None:
            save_file(arrays, tmp, metadata=meta)
        else:
            _write(tmp, arrays, meta)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _write(path, arrays, meta):
    """The safetensors format with numpy and json only."""
    header, off = {"__metadata__": meta}, 0
    for name, a in arrays.items():
        header[name] = {"dtype": _DT[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    h += b" " * (-len(h) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for a in arrays.values():
            f.write(a.tobytes())
        f.flush()
        os.fsync(f.fileno())


def load(path):
    """Read a safetensors file of F32/F64 tensors with numpy: ({name: array}, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta, out = header.pop("__metadata__", {}), {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        a = np.frombuffer(data[8 + n + b:8 + n + e], {"F32": "<f4", "F64": "<f8"}[t["dtype"]])
        out[name] = a.reshape(t["shape"])
    return out, meta


def _text_batches(tok, path, samples, seq_len, device):
    """Token windows of seq_len from a text file, samples of them."""
    with open(path, encoding="utf-8") as f:
        ids = tok(f.read(), return_tensors="pt").input_ids[0]
    if len(ids) < seq_len:
        raise SystemExit("collect_stats: %s has %d tokens; --seq-len %d needs more" % (path, len(ids), seq_len))
    windows = min(samples, len(ids) // seq_len)
    for i in range(windows):
        yield {"input_ids": ids[i * seq_len:(i + 1) * seq_len].unsqueeze(0).to(device)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a transformers model directory or hub id")
    ap.add_argument("--text", required=True, help="calibration text (UTF-8), cut into --seq-len token windows")
    ap.add_argument("--samples", type=int, default=128, help="windows to run (default 128)")
    ap.add_argument("--seq-len", type=int, default=512, help="tokens per window (default 512)")
    ap.add_argument("--device", default="cuda" if torch is not None and torch.cuda.is_available() else "cpu")
    ap.add_argument("--stats-device", default=None, help="where the float64 accumulators live (default: the layer's)")
    ap.add_argument("--torch-dtype", default="auto", help="the model's dtype: auto, float16, bfloat16, float32")
    ap.add_argument("--include", default=None, help="only modules whose name matches this regex")
    ap.add_argument("--dtype", choices=["f64", "f32"], default="f64", help="dtype of the written matrices")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args(argv)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise SystemExit("collect_stats: --model needs the transformers package; for other models call collect() and save() from Python")
    dt = a.torch_dtype if a.torch_dtype == "auto" else getattr(torch, a.torch_dtype)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=dt).to(a.device)
    batches = _text_batches(tok, a.text, a.samples, a.seq_len, a.device)
    stats, counts = collect(model, batches, include=a.include, stats_device=a.stats_device,
                            log=lambda i: print("\rcollect_stats: %d/%d windows" % (i, a.samples), end="", file=sys.stderr))
    print(file=sys.stderr)
    save(a.output, stats, counts, dtype=a.dtype.upper(), source=a.model)
    print("collect_stats: %d matrices → %s" % (len(stats), a.output))


if __name__ == "__main__":
    main()
