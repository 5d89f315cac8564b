#!/usr/bin/env python3
"""Trains an MLP 64→1024→1024→10 on scikit-learn's bundled digits and writes
its weights as a float32 safetensors file, the "realistic trained weights"
of the sketch-precision study (bench/sketchprec/run.sh).

    /usr/bin/python3 bench/sketchprec/train_digits.py OUT.safetensors [--epochs N] [--seed S]

Needs Debian's python3-torch, python3-sklearn and python3-numpy; no
download (the digits ship with scikit-learn). Prints the test accuracy.
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from collect_stats import save  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.3, random_state=a.seed, stratify=y)
    xtr, xte = (torch.tensor(v, dtype=torch.float32) for v in (xtr, xte))
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)

    torch.manual_seed(a.seed)
    h = a.hidden
    m = torch.nn.Sequential(torch.nn.Linear(64, h), torch.nn.ReLU(), torch.nn.Linear(h, h), torch.nn.ReLU(),
                            torch.nn.Linear(h, 10))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(a.seed)
    for _ in range(a.epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(xtr[idx]), ytr[idx]).backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        acc = (m(xte).argmax(1) == yte).float().mean().item()
    names = {"0": "fc1", "2": "fc2", "4": "fc3"}
    tensors = {f"{names[k.split('.')[0]]}.weight": v.detach().numpy().astype(np.float32)
               for k, v in m.state_dict().items() if k.endswith("weight")}
    save(a.out, tensors, dtype="F32", metadata={"source": f"digits MLP 64-{h}-{h}-10, {a.epochs} epochs, seed {a.seed}",
                                                "test_accuracy": f"{acc:.4f}"})
    print(f"test accuracy {acc:.4f}; wrote {a.out}: " + ", ".join(f"{n} {t.shape[0]}×{t.shape[1]}" for n, t in sorted(tensors.items())))


if __name__ == "__main__":
    main()
