"""Torch vs the JAX/Haiku reference on one machine, in one run: accuracy and latency curves.

    python scripts/parity_report.py                               # runs/train/model.pt
    python scripts/parity_report.py --jax-run runs/jax            # also compare a jax_ref-trained model

Both frameworks sweep the same trained weights (both modes, both batch sizes). Writes
<out-dir>/parity.csv, parity.json and overlay plots, and prints a table with the
torch/JAX latency ratios (below 1: torch is faster).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import torch

from jax_ref import lowrank as jax_lowrank
from torch_impl.checkpoint import load_model
from torch_impl.cli import add_checkpoint_arg, add_data_args, add_device_arg, add_progress_arg, fail
from torch_impl.data import CIFAR10DataModule, DataError
from torch_impl.haiku_convert import torch_to_haiku
from torch_impl.inference import INFERENCE_METHOD
from torch_impl.plots import plot_sweep
from torch_impl.provenance import provenance
from torch_impl.runtime import flush_denormals, full_fp32, resolve_device
from torch_impl.sweep import parse_fractions, run_sweep, write_results

PARITY_FRACTIONS = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_arg(p)
    p.add_argument("--jax-run", help="out-dir of `train.py --framework jax` (its metrics.json)")
    p.add_argument("--fractions", default=",".join(str(f) for f in PARITY_FRACTIONS),
                   help="default: 8 points (the JAX sweep costs ~1 ms per image on a 2-core CPU)")
    add_data_args(p)
    p.add_argument("--out-dir", default="runs/parity")
    add_device_arg(p)  # JAX uses its default backend
    add_progress_arg(p)
    return p.parse_args(argv)


def ratio_table(torch_rows: list[dict], jax_rows: list[dict], batch_sizes: list[int]) -> tuple[str, list[dict]]:
    head = f"{'mode':<14}{'f':>5}{'acc torch':>10}{'acc jax':>9}" + "".join(
        f"{f'torch b{b}':>11}{f'jax b{b}':>10}{'t/j':>6}" for b in batch_sizes)
    lines, merged = [head, "-" * len(head)], []
    for t, j in zip(torch_rows, jax_rows):
        assert (t["mode"], t["rank_fraction"]) == (j["mode"], j["rank_fraction"])
        row = {"mode": t["mode"], "rank_fraction": t["rank_fraction"], "acc_torch": t["test_acc"],
               "acc_jax": j["test_acc"]}
        f = "" if t["rank_fraction"] is None else f"{t['rank_fraction']:.1f}"
        line = f"{t['mode']:<14}{f:>5}{100 * t['test_acc']:>10.2f}{100 * j['test_acc']:>9.2f}"
        for b in batch_sizes:
            key = f"latency_us_b{b}"
            row[f"torch_{key}"], row[f"jax_{key}"] = t[key], j[key]
            row[f"ratio_b{b}"] = t[key] / j[key]
            line += f"{t[key]:>11.1f}{j[key]:>10.1f}{t[key] / j[key]:>6.2f}"
        lines.append(line)
        merged.append(row)
    return "\n".join(lines), merged


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/runtime.py
    try:
        fractions = parse_fractions(args.fractions)
        images, labels = CIFAR10DataModule(args.data_dir, args.cache_dir,
                                           test_limit=args.test_limit).numpy_splits()["test"]
        net, meta = load_model(args.checkpoint)
        device = resolve_device(args.device)
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(err)
    batch_sizes = [min(10_000, len(labels)), 1]
    progress = not args.no_progress_bar
    # The same arithmetic on both sides: full fp32, no TF32 (see torch_impl/runtime.py).
    full_fp32()
    jax.config.update("jax_default_matmul_precision", "highest")
    torch_rows = run_sweep(net, torch.from_numpy(images), torch.from_numpy(labels), fractions,
                           batch_sizes=batch_sizes, progress=progress, paired=False, device=device)
    jax_rows = jax_lowrank.run_sweep(torch_to_haiku(net), images, labels, fractions, batch_sizes=batch_sizes,
                                     progress=progress)
    table, merged = ratio_table(torch_rows, jax_rows, batch_sizes)
    out_dir = Path(args.out_dir)
    report = {
        "checkpoint": args.checkpoint, "n_test": len(labels), "batch_sizes": batch_sizes,
        "torch_method": INFERENCE_METHOD, "torch_device": str(device),
        "jax_method": f"jax.jit on {jax.default_backend()}, whole batch per call, block_until_ready, "
                      "matmul precision highest",
        "comparison": merged, "provenance": provenance(device),
    }
    if args.jax_run:
        jax_metrics = json.loads((Path(args.jax_run) / "metrics.json").read_text())
        torch_metrics = meta.get("metrics", {})
        report["independent_training"] = {
            fw: {k: m.get(k) for k in ("test_acc_ema", "test_acc_live", "steps", "wall_time_s", "images_per_s")}
            | {"batch_size": m.get("config", {}).get("batch_size")}
            for fw, m in (("torch", torch_metrics), ("jax", jax_metrics))
        }
    write_results(torch_rows + jax_rows, out_dir, report, stem="parity")
    plots = plot_sweep({"torch": torch_rows, "jax": jax_rows}, out_dir, tuple(batch_sizes))
    print(table)
    if "independent_training" in report:
        print("\nindependently trained:", json.dumps(report["independent_training"], indent=2))
    print(f"\nreport: {out_dir / 'parity.json'}\n        {out_dir / 'parity.csv'}\nplots:  "
          + "\n        ".join(str(p) for p in plots))
    return report


if __name__ == "__main__":
    main()
