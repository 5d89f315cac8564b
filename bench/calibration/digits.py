#!/usr/bin/env python3
"""Plain against data-aware SVD on a trained network and real data.

Trains an MLP 64→256→256→10 on scikit-learn's handwritten digits (bundled
with python3-sklearn, no download) for several seeds, collects the layers'
input statistics on the training split with scripts/collect_stats.py,
compresses every layer through the lowrank command at several ratios, with
and without --calibration, merges the factors back to dense weights
(`lowrank merge`) and measures the accuracy on the test split.

    bash bench/calibration/run.sh       # builds lowrank, runs this, ≈ 3 min

Writes OUT/results.md (the table), OUT/results.json (every run) and
OUT/accuracy.png (the plot); OUT is docs/calibration by default.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from collect_stats import collect, load, save  # noqa: E402

LAYERS = ["fc1", "fc2", "fc3"]


class MLP(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, hidden)
        self.fc2 = torch.nn.Linear(hidden, hidden)
        self.fc3 = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def data(seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.3, random_state=seed, stratify=y)
    f = lambda a: torch.tensor(a, dtype=torch.float32)
    return f(xtr), torch.tensor(ytr), f(xte), torch.tensor(yte)


def train(seed, hidden, xtr, ytr, epochs):
    torch.manual_seed(seed)
    m = MLP(hidden)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(xtr[idx]), ytr[idx]).backward()
            opt.step()
    return m.eval()


def accuracy(m, x, y):
    with torch.no_grad():
        return (m(x).argmax(1) == y).float().mean().item()


def with_weights(hidden, tensors):
    m = MLP(hidden)
    m.load_state_dict({k: torch.tensor(np.array(v), dtype=torch.float32) for k, v in tensors.items()})
    return m.eval()


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("%s failed:\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return p.stdout


# plain SVD; --calibration with C = XᵀX/n only; with C and the mean μ
# (factorized about the mean, the bias shifted by (W − B·A)·μ).
MODES = {"plain": "plain SVD", "second": "data-aware, C only", "moments": "data-aware, C and μ (bias shifted)"}

SCOPES = {  # --include for each scope
    "hidden": r"^fc[12]\.weight$",  # the hidden layers; the 10-class head stays dense
    "all": r"\.weight$",            # every layer, the head too
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lowrank", required=True, help="the lowrank binary")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "docs", "calibration"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--ratios", default="0.03,0.05,0.08,0.1,0.15,0.2,0.3,0.45,0.6")
    ap.add_argument("--replot", action="store_true", help="only redraw the table and plot from OUT/results.json")
    a = ap.parse_args()
    ratios = [float(r) for r in a.ratios.split(",")]
    if a.replot:
        runs = json.load(open(os.path.join(a.out, "results.json")))
        report(runs, sorted({r["ratio"] for r in runs}), a)
        return
    torch.set_num_threads(max(1, os.cpu_count() // 2))
    os.makedirs(a.out, exist_ok=True)
    xtr, ytr, xte, yte = data()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        p = lambda name: os.path.join(tmp, name)
        for seed in range(a.seeds):
            m = train(seed, a.hidden, xtr, ytr, a.epochs)
            base = accuracy(m, xte, yte)
            print("seed %d: dense test accuracy %.4f" % (seed, base), flush=True)
            save(p("model.safetensors"), {k: v.double().numpy() for k, v in m.state_dict().items()}, dtype="F32", metadata={})
            stats, counts = collect(m, [xtr])  # the training split, one batch
            save(p("moments.safetensors"), stats, counts)  # C and μ per layer
            save(p("second.safetensors"), {n: v for n, v in stats.items() if not n.endswith(".input_mean")}, counts)
            for scope, include in SCOPES.items():
                for rho in ratios:
                    for mode in MODES:
                        cmd = [a.lowrank, "factorize", p("model.safetensors"), "-o", p("fact.safetensors"),
                               "--ratio", str(rho), "--method", "exact", "--include", include,
                               "--report", p("report.json"), "--quiet", "--force"]
                        if mode != "plain":
                            cmd += ["--calibration", p(mode + ".safetensors")]
                        run(cmd)
                        run([a.lowrank, "merge", p("fact.safetensors"), "-o", p("dense.safetensors"), "--quiet", "--force"])
                        dense, _ = load(p("dense.safetensors"))
                        acc = accuracy(with_weights(a.hidden, dense), xte, yte)
                        rows = json.load(open(p("report.json")))["tensors"]
                        w = [r for r in rows if r["name"].endswith(".weight")]
                        kept = sum(r["params_after"] for r in w) / sum(r["params_before"] for r in w)
                        runs.append({"seed": seed, "scope": scope, "ratio": rho, "mode": mode, "accuracy": acc,
                                     "dense": base, "params_kept": kept,
                                     "layers": {r["name"]: {k: r.get(k) for k in ("status", "rank", "rel_error", "output_rel_error", "calibration")} for r in w}})
                        print("  %-6s ratio %.2f %-10s accuracy %.4f  params kept %.3f  ranks %s" % (
                            scope, rho, mode, acc, kept, [r.get("rank") or "dense" for r in w]), flush=True)
    json.dump(runs, open(os.path.join(a.out, "results.json"), "w"), indent=1)
    report(runs, ratios, a)


def report(runs, ratios, a):
    sel = lambda scope, rho, mode: [r for r in runs if r["scope"] == scope and r["ratio"] == rho and r["mode"] == mode]
    dense = [r["dense"] for r in sel("hidden", ratios[0], "plain")]
    fmt = lambda v: "%.1f%% (%.1f–%.1f)" % (100 * np.mean(v), 100 * min(v), 100 * max(v))
    lines = [
        "Test accuracy of an MLP 64→%d→%d→10 trained on scikit-learn's digits (1257 training, 540 test images), "
        "compressed by `lowrank factorize --ratio R --method exact`: plain, with `--calibration` holding C = XᵀX/n only, "
        "and with C and the mean μ (the bias then takes the mean error); statistics from the training split "
        "(`scripts/collect_stats.py`), merged back with `lowrank merge`; mean over %d "
        "training seeds (min–max). Dense: %s. Parameters kept: of the three weight matrices, a dense one counted whole." % (
            a.hidden, a.hidden, a.seeds, fmt(dense)),
    ]
    for scope, title in (("hidden", "The hidden layers fc1 and fc2 compressed, the 10-class head fc3 dense"),
                         ("all", "Every layer compressed, the head fc3 (10×%d) too: a rank below 10 drops classes" % a.hidden)):
        lines += ["", "**%s.**" % title, "",
                  "| --ratio | parameters kept | ranks | " + " | ".join(MODES.values()) + " |",
                  "|---|---|---|" + "---|" * len(MODES)]
        for rho in ratios:
            pl = sel(scope, rho, "plain")
            ranks = ", ".join("%s %s" % (n.split(".")[0], v.get("rank") or "dense") for n, v in pl[0]["layers"].items())
            lines.append("| %.2f | %.1f%% | %s | %s |" % (rho, 100 * pl[0]["params_kept"], ranks,
                         " | ".join(fmt([r["accuracy"] for r in sel(scope, rho, mode)]) for mode in MODES)))
    open(os.path.join(a.out, "results.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (scope, title) in zip(axes, (("hidden", "hidden layers compressed (head dense)"), ("all", "every layer, the 10-class head too"))):
        # Every layer: only the ratios at which the head is factorized too
        # (below, rank 1 does not fit it and it stays dense: the left panel).
        rs = [rho for rho in ratios if scope == "hidden" or
              all(v.get("rank") for v in sel(scope, rho, "plain")[0]["layers"].values())]
        for (mode, label), c in zip(MODES.items(), ("tab:red", "tab:orange", "tab:blue")):
            x = [100 * sel(scope, rho, mode)[0]["params_kept"] for rho in rs]
            ys = np.array([[r["accuracy"] for r in sel(scope, rho, mode)] for rho in rs]) * 100
            ax.plot(x, ys.mean(1), "o-", color=c, label=label)
            ax.fill_between(x, ys.min(1), ys.max(1), color=c, alpha=0.15)
        ax.axhline(100 * np.mean(dense), color="gray", ls="--", label="dense")
        ax.set_xlabel("parameters kept (% of the three weight matrices)")
        ax.set_title("MLP on digits: " + title)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%%, mean and range over %d seeds)" % a.seeds)
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "accuracy.png"), dpi=100)


if __name__ == "__main__":
    main()
