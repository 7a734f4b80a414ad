"""Torch vs the JAX/Haiku reference on one machine, in one run: accuracy and latency curves.

    python scripts/parity_report.py                               # runs/train/model.pt
    python scripts/parity_report.py --jax-run runs/jax            # also compare a jax_ref-trained model

Both frameworks sweep the same trained weights (both modes, both batch sizes): torch through
its harness (chunks), JAX the whole batch per call, as each runs by default. Then a fair
latency comparison (torch_impl/parity/framework_latency.py) runs a few points in both frameworks both
ways (the whole batch, and the same chunks of images) in interleaved rounds. Writes
<out-dir>/parity.csv (every row labelled with how it ran, `latency_way`), parity.json and overlay
plots, and prints both tables with the torch/JAX latency ratios (below 1: torch is faster).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from torch_impl.checkpoint import load_model
from torch_impl.cli import flags as cli
from torch_impl.cli.process import flush_denormals, full_fp32, resolve_device
from torch_impl.data import CIFAR10DataModule, DataError
from torch_impl.factorize import compress_model
from torch_impl.inference import INFERENCE_METHOD
from torch_impl.measure.latency import batch_sizes_for
from torch_impl.measure.plots import plot_sweep
from torch_impl.measure.results import write_results
from torch_impl.measure.sweep import parse_fractions, run_sweep
from torch_impl.parity.framework_latency import HARNESS, WAYS, fair_latency, fair_table, ratio_table
from torch_impl.parity.haiku_convert import torch_to_haiku
from torch_impl.parity.jax_sweep import jax_full_fp32, jax_point, jax_sweep
from torch_impl.provenance import provenance

PARITY_FRACTIONS = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
FAIR_POINTS = ((None, "dense"), (0.5, "factorized"), (0.1, "factorized"))


def read_jax_run(run_dir: str) -> dict:
    """The metrics of a ``train.py --framework jax`` run, or a one-line error naming the flag."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"--jax-run {run_dir}: no metrics.json there; pass the --out-dir of "
                                "`python scripts/train.py --framework jax`")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--jax-run {run_dir}: {path} is not readable JSON ({err}); rerun that training") from None
    if not isinstance(metrics, dict) or "test_acc_ema" not in metrics:
        raise ValueError(f"--jax-run {run_dir}: {path} is not a training run's metrics (no test_acc_ema)")
    return metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.make_parser(__doc__)
    cli.add_checkpoint_arg(p)
    p.add_argument("--jax-run", help="out-dir of `train.py --framework jax` (its metrics.json)")
    p.add_argument("--fractions", type=cli.arg_type(parse_fractions),
                   default=",".join(str(f) for f in PARITY_FRACTIONS),
                   help="default: 8 points (the JAX sweep costs ~1 ms per image on a 2-core CPU)")
    cli.add_data_args(p)
    p.add_argument("--out-dir", default="runs/parity", help="where parity.csv/json and the plots go")
    cli.add_overwrite_arg(p)
    cli.add_device_arg(p)  # JAX uses its default backend
    cli.add_timing_args(p, time_cap_s=600)
    cli.add_progress_arg(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/cli/process.py
    return cli.run_in_out_dir(args.out_dir, ("parity.json", "parity.csv"), args.overwrite, lambda out: _run(args, out))


def _run(args: argparse.Namespace, out_dir: Path) -> dict:
    try:
        protocol = cli.timing_protocol(args)
        fractions = args.fractions
        jax_metrics = read_jax_run(args.jax_run) if args.jax_run else None  # before an hour of sweeps
        images, labels = CIFAR10DataModule(args.data_dir, args.cache_dir,
                                           test_limit=args.test_limit).numpy_splits()["test"]
        net, meta = load_model(args.checkpoint)
        device = resolve_device(args.device)
    except (DataError, ValueError, FileNotFoundError) as err:
        cli.fail(err)
    batch_sizes = batch_sizes_for(len(labels))
    progress = not args.no_progress_bar
    origin = provenance(device)  # the code and machine as the run starts (the tree may change while it runs)
    # The same arithmetic on both sides: full fp32, no TF32 (see torch_impl/cli/process.py).
    full_fp32()
    jax_method = jax_full_fp32()
    torch_rows, timing = run_sweep(net, torch.from_numpy(images), torch.from_numpy(labels), fractions,
                                   batch_sizes=batch_sizes, progress=progress, control=False, roofline=False,
                                   device=device, protocol=protocol)
    params = torch_to_haiku(net)
    jax_rows = jax_sweep(params, images, labels, fractions, batch_sizes=batch_sizes, progress=progress)
    for r in torch_rows:
        r["latency_way"] = HARNESS
    for r in jax_rows:
        r["latency_way"] = f"jax: {WAYS['whole']}"
    table, merged = ratio_table(torch_rows, jax_rows, batch_sizes)
    points = {label if f is None else f"{label} f={f:g}": f for f, label in FAIR_POINTS}
    fair, fair_timing = fair_latency(
        {p: (net if f is None else compress_model(net, rank_fraction=f)[0]).to(device) for p, f in points.items()},
        {p: jax_point(params, f) for p, f in points.items()},
        images, batch_sizes[0], progress=progress, protocol=protocol)
    report = {
        "checkpoint": args.checkpoint, "n_test": len(labels), "batch_sizes": batch_sizes,
        "torch_method": INFERENCE_METHOD, "torch_device": str(device),
        "jax_method": jax_method,
        "comparison": merged, "fair_latency": fair, "timing": {"sweep": timing, "fair": fair_timing},
        "provenance": origin,
    }
    if jax_metrics is not None:
        torch_metrics = meta.get("metrics", {})
        report["independent_training"] = {
            fw: {k: m.get(k) for k in ("test_acc_ema", "test_acc_live", "steps", "wall_time_s", "images_per_s")}
            | {"batch_size": m.get("config", {}).get("batch_size")}
            for fw, m in (("torch", torch_metrics), ("jax", jax_metrics))
        }
    fair_rows = [{"method": f"{r['point']}, {r['way']}", "family": "fair latency", "latency_way": r["way"], **r}
                 for r in fair]
    write_results(torch_rows + jax_rows + fair_rows, out_dir, report, stem="parity")
    plots = plot_sweep({"torch": torch_rows, "jax": jax_rows}, out_dir, tuple(batch_sizes))
    print(table)
    print(f"\nfair latency at batch {batch_sizes[0]} (both frameworks both ways, interleaved rounds):")
    print(fair_table(fair))
    if "independent_training" in report:
        print("\nindependently trained:", json.dumps(report["independent_training"], indent=2))
    print(f"\nreport: {out_dir / 'parity.json'}\n        {out_dir / 'parity.csv'}\nplots:  "
          + "\n        ".join(str(p) for p in plots))
    return report


if __name__ == "__main__":
    main()
