#!/usr/bin/env python3
"""Prove that PEFT loads an adapter extracted by lowrank and reproduces the tuned model.

Usage: peft_check.py PATH/TO/lowrank   (a prebuilt binary; needs torch, safetensors, peft; no network)

Builds a tiny torch model whose module names nest ("fc1" and "encoder.fc1",
so that rank_pattern lookup by suffix is exercised), saves it as the base
and a copy with low-rank deltas of different ranks as the tuned model, runs
`lowrank extract`, loads the adapter with PeftModel.from_pretrained and
checks the outputs, the ranks and scalings PEFT built, merge_and_unload,
and `lowrank merge`. Exits non-zero on any failure.
"""
import copy
import json
import os
import subprocess
import sys
import tempfile

import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file

RANKS = {"fc1": 3, "encoder.fc1": 5, "encoder.layers.0": 2}  # head stays unchanged


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(32, 48)
        self.encoder = torch.nn.Module()
        self.encoder.fc1 = torch.nn.Linear(48, 40)
        self.encoder.layers = torch.nn.ModuleList([torch.nn.Linear(40, 40)])
        self.head = torch.nn.Linear(40, 8)

    def forward(self, x):
        x = torch.tanh(self.fc1(x))
        x = torch.tanh(self.encoder.fc1(x))
        x = torch.tanh(self.encoder.layers[0](x))
        return self.head(x)


def save(model, path):
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, path)


def lowrank(cli, *args):
    print("+ lowrank " + " ".join(args), flush=True)
    subprocess.run([cli, *args], check=True)


def main(cli):
    torch.manual_seed(0)
    base = Tiny().eval()
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        for name, r in RANKS.items():
            w = tuned.get_submodule(name).weight
            d, k = w.shape
            w += 0.2 * torch.randn(d, r) @ torch.randn(r, k) / r ** 0.5
    tmp = tempfile.mkdtemp(prefix="peft_check_")
    base_path, tuned_path = os.path.join(tmp, "base.safetensors"), os.path.join(tmp, "tuned.safetensors")
    adapter = os.path.join(tmp, "adapter")
    save(base, base_path)
    save(tuned, tuned_path)
    lowrank(cli, "extract", "--base", base_path, "--tuned", tuned_path, "-o", adapter, "--tol", "1e-5", "--base-model", "tiny")
    cfg = json.load(open(os.path.join(adapter, "adapter_config.json")))
    print(json.dumps(cfg, indent=1))
    assert sorted(cfg["target_modules"]) == sorted(RANKS), cfg["target_modules"]

    model = Tiny()
    model.load_state_dict(load_file(base_path))
    peft_model = PeftModel.from_pretrained(model, adapter).eval()
    failures = []
    for name, r in RANKS.items():
        layer = peft_model.base_model.model.get_submodule(name)
        got_r = getattr(layer, "r", {}).get("default")
        got_s = getattr(layer, "scaling", {}).get("default")
        print("%-18s PEFT rank %s scaling %s (want %d, 1.0)" % (name, got_r, got_s, r))
        if got_r != r or got_s is None or abs(got_s - 1.0) > 1e-12:
            failures.append("%s: PEFT built rank %s scaling %s; want %d and 1.0" % (name, got_r, got_s, r))

    x = torch.randn(64, 32)
    with torch.no_grad():
        y_base, y_tuned, y_peft = base(x), tuned(x), peft_model(x)
    gap, err = (y_tuned - y_base).abs().max().item(), (y_peft - y_tuned).abs().max().item()
    print("max |tuned - base| = %.3g, max |peft - tuned| = %.3g" % (gap, err))
    if not gap > 1e-2:
        failures.append("the deltas do not change the outputs (%.3g); the test is void" % gap)
    if not err < 1e-4:
        failures.append("PeftModel outputs differ from the tuned model by %.3g" % err)

    merged = peft_model.merge_and_unload().state_dict()
    want = tuned.state_dict()
    for k, v in want.items():
        d = (merged[k] - v).abs().max().item()
        if d > 1e-5:
            failures.append("merge_and_unload: %s differs from tuned by %.3g" % (k, d))

    ours = os.path.join(tmp, "merged.safetensors")
    lowrank(cli, "merge", "--base", base_path, "--adapter", adapter, "-o", ours, "--quiet")
    for k, v in load_file(ours).items():
        d = (v - want[k]).abs().max().item()
        if d > 1e-5:
            failures.append("lowrank merge: %s differs from tuned by %.3g" % (k, d))

    if failures:
        print("PEFT check FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("PEFT check passed: PeftModel.from_pretrained reproduces the tuned model (max error %.3g)" % err)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: peft_check.py PATH/TO/lowrank")
    sys.exit(main(os.path.abspath(sys.argv[1])))
