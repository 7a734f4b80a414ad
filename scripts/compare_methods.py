"""Every compression method on one trained checkpoint: accuracy, latency, one Pareto plot, REPORT.md.

    python scripts/compare_methods.py                         # runs/train/model.pt -> runs/compare
    python scripts/compare_methods.py --checkpoint runs/cpu_seed42/model.pt --finetune-steps 400
    python scripts/compare_methods.py --only "SVD f=0.2;dense int8" --test-limit 2000   # a quick look

Methods (torch_impl/methods.py): plain SVD, per-layer ranks (energy and MAC-budget rules),
data-aware factors, recovery fine-tuning, low-rank convolutions, a smaller head, magnitude
pruning, dynamic int8, and combinations. Writes compare.csv/json, pareto.png and REPORT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from torch_impl.checkpoint import load_model  # noqa: E402
from torch_impl.data import CIFAR10DataModule, DataError  # noqa: E402
from torch_impl.latency import count_macs, measure_latency, paired_speedup  # noqa: E402
from torch_impl.lowrank import model_svds  # noqa: E402
from torch_impl.methods import Context, default_recipes, describe, run_recipe  # noqa: E402
from torch_impl.rank_select import DEFAULT_MULTIPLE, cheapest_budget  # noqa: E402
from torch_impl.provenance import provenance, write_json  # noqa: E402
from torch_impl.report import bars, pareto_plot, write_report  # noqa: E402
from torch_impl.runtime import flush_denormals  # noqa: E402
from torch_impl.sweep import accuracy, write_results  # noqa: E402
from torch_impl.answers import answers  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="runs/train/model.pt")
    p.add_argument("--out-dir", default="runs/compare")
    p.add_argument("--finetune-steps", type=int, default=400, help="recovery fine-tune length (batch 128)")
    p.add_argument("--distill-steps", type=int, default=1500,
                   help="fine-tune length of the distilled recipes (the pool-folded trunk)")
    p.add_argument("--fold-budget", type=int, default=1_000_000,
                   help="MLP MAC budget of the tightest pool-folded recipe")
    p.add_argument("--calib-images", type=int, default=2048, help="training images for the data-aware factors")
    p.add_argument("--only", help="semicolon-separated method names to run (default: all)")
    p.add_argument("--data-dir")
    p.add_argument("--cache-dir")
    p.add_argument("--test-limit", type=int, help="a random subset of N test images (quick looks)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild pareto.png, bars.json and REPORT.md from <out-dir>/compare.json")
    p.add_argument("--no-progress-bar", action="store_true")
    return p.parse_args(argv)


def write_outputs(rows: list[dict], out_dir: Path, meta: dict, checkpoint: str) -> Path:
    plot = pareto_plot(rows, out_dir, tuple(meta["batch_sizes"]))
    verdicts = bars(rows)
    write_json(out_dir / "bars.json", verdicts)
    report = write_report(out_dir / "REPORT.md", rows, tuple(meta["batch_sizes"]), plot, verdicts, answers(rows),
                          {**meta["provenance"], "checkpoint": checkpoint,
                           "threads": meta["provenance"].get("torch_threads")})
    print(f"\ntable: {out_dir / 'compare.csv'}\nplot:  {plot}\nreport: {report}")
    return report


def measure(model: torch.nn.Module, dense: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
            batch_sizes: list[int], macs: dict | None = None) -> dict:
    macs = macs if macs is not None else count_macs(model)
    row = {"test_acc": accuracy(model, images, labels), **describe(model),
           "total_macs": sum(macs.values()),
           "mlp_macs": sum(v for k, v in macs.items() if k.startswith("classifier"))}
    for res in measure_latency(model, images, batch_sizes, repeats=None):
        row[f"latency_us_b{res.batch_size}"] = res.per_example_us
        row[f"latency_iqr_us_b{res.batch_size}"] = res.iqr_us
    row["latency_ratio_paired"] = (1.0 if model is dense
                                   else 1.0 / paired_speedup(dense, model, images, batch_sizes[0]))
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/runtime.py
    if args.report_only:
        path = Path(args.out_dir) / "compare.json"
        if not path.is_file():
            sys.exit(f"error: --report-only needs {path}; run without --report-only first")
        meta = json.loads(path.read_text())
        write_outputs(meta["rows"], Path(args.out_dir), meta, meta["checkpoint"])
        return meta["rows"]
    try:
        dense, _ = load_model(args.checkpoint)
        dm = CIFAR10DataModule(args.data_dir, args.cache_dir, batch_size=128, test_limit=args.test_limit)
        splits = dm.numpy_splits()
        if args.finetune_steps < 1 or args.distill_steps < 1 or args.fold_budget < 1:
            raise ValueError("--finetune-steps, --distill-steps and --fold-budget must be positive")
        if args.fold_budget < (low := cheapest_budget(dense)):  # fold_pools leaves the MLP as it is
            raise ValueError(f"--fold-budget {args.fold_budget:,} is below the cheapest MLP the budget rule "
                             f"builds ({low:,} MACs per example, {DEFAULT_MULTIPLE} ranks per layer); raise it")
        recipes = default_recipes(ft_steps=args.finetune_steps, kd_steps=args.distill_steps,
                                  fold_budget=args.fold_budget)
        if args.only:
            wanted = [w.strip() for w in args.only.split(";") if w.strip()]
            if unknown := [w for w in wanted if w not in {r.name for r in recipes}]:
                raise ValueError(f"--only names unknown methods {unknown}; known: {[r.name for r in recipes]}")
            recipes = [r for r in recipes if r.name in wanted]
    except (DataError, ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    images, labels = (torch.from_numpy(a) for a in splits["test"])
    calib_idx = np.random.default_rng(0).permutation(len(splits["train"][1]))[: args.calib_images]
    ctx = Context(dense.eval(), model_svds(dense), torch.from_numpy(splits["train"][0][calib_idx]), dm,
                  accelerator="cpu")
    batch_sizes = [min(10_000, len(labels)), 1]
    evaluate = lambda m: accuracy(m, images, labels)  # noqa: E731

    rows = [{"method": "dense", "family": "dense", **measure(dense, dense, images, labels, batch_sizes)}]
    for recipe in tqdm(recipes, desc="methods", unit="method", disable=args.no_progress_bar):
        model, info = run_recipe(recipe, ctx, evaluate)
        macs = info.pop("macs_by_layer")
        rows.append({**info, **measure(model, dense, images, labels, batch_sizes, macs)})
        r = rows[-1]
        print(f"{r['method']:<52} acc {100 * r['test_acc']:6.2f}%  {r[f'latency_us_b{batch_sizes[0]}']:7.1f} us/ex"
              f"  x{r['latency_ratio_paired']:.3f} of dense", flush=True)

    out_dir = Path(args.out_dir)
    meta = {"checkpoint": args.checkpoint, "n_test": len(labels), "batch_sizes": batch_sizes,
            "finetune_steps": args.finetune_steps, "distill_steps": args.distill_steps,
            "calib_images": args.calib_images, "provenance": provenance()}
    write_results(rows, out_dir, meta, stem="compare")
    write_outputs(rows, out_dir, meta, args.checkpoint)
    return rows


if __name__ == "__main__":
    main()
