"""Sweep SVD rank fractions of a trained network: accuracy, latency, parameters, MACs, plots.

    python scripts/sweep_ranks.py                                   # runs/train/model.pt
    python scripts/sweep_ranks.py --checkpoint runs/s7/model.pt --fractions 1.0,0.5,0.2,0.1
    python scripts/sweep_ranks.py --framework jax                   # the JAX/Haiku reference
    python scripts/sweep_ranks.py --framework jax --jax-params runs/jax/params.npz

Writes <out-dir>/sweep.csv, sweep.json (with provenance) and three PNG plots.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from torch_impl.checkpoint import load_model
from torch_impl.cli import add_checkpoint_arg, add_data_args, add_device_arg, add_progress_arg, fail
from torch_impl.data import CIFAR10DataModule, DataError
from torch_impl.inference import INFERENCE_METHOD
from torch_impl.latency import reference_speedup
from torch_impl.lowrank import MODES
from torch_impl.plots import plot_sweep
from torch_impl.provenance import provenance
from torch_impl.runtime import flush_denormals, full_fp32, resolve_device
from torch_impl.sweep import DEFAULT_FRACTIONS, format_table, parse_fractions, run_sweep, write_results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_arg(p)
    p.add_argument("--framework", choices=("torch", "jax"), default="torch")
    p.add_argument("--jax-params", help="with --framework jax: a params.npz from jax_ref training "
                                        "instead of the converted torch checkpoint")
    p.add_argument("--fractions", default=",".join(str(f) for f in DEFAULT_FRACTIONS))
    p.add_argument("--modes", default=",".join(MODES), help="factorized,reconstructed")
    p.add_argument("--batch-sizes", default="10000,1", help="latency batch sizes")
    add_data_args(p)
    p.add_argument("--out-dir", help="default: runs/sweep (torch) or runs/sweep_jax")
    add_device_arg(p)
    p.add_argument("--no-paired", action="store_true",
                   help="skip timing each point alternately with the dense model (saves ~1/3 of the time)")
    add_progress_arg(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/runtime.py
    try:
        fractions = parse_fractions(args.fractions)
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        if bad := [m for m in modes if m not in MODES]:
            raise ValueError(f"--modes takes {','.join(MODES)}, got {bad}")
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        if args.jax_params and args.framework != "jax":
            raise ValueError("--jax-params holds Haiku parameters: add --framework jax")
        dm = CIFAR10DataModule(args.data_dir, args.cache_dir, test_limit=args.test_limit)
        images, labels = dm.numpy_splits()["test"]
        batch_sizes = [min(b, len(labels)) for b in batch_sizes]
        net, meta = (None, {}) if args.jax_params else load_model(args.checkpoint)
        device = resolve_device(args.device)
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(err)
    progress = not args.no_progress_bar
    reference = None
    full_fp32()
    if args.framework == "torch":
        rows = run_sweep(net, torch.from_numpy(images), torch.from_numpy(labels), fractions, modes,
                         batch_sizes, progress=progress, paired=not args.no_paired, device=device)
        method = INFERENCE_METHOD
        if device.type == "cpu" and not args.no_paired:  # how fast is the machine today: latency.PlainEager
            reference = reference_speedup(net, torch.from_numpy(images), batch_sizes[0])
    else:
        import jax

        from jax_ref import lowrank as jax_lowrank
        from jax_ref.train import load_params
        from torch_impl.haiku_convert import torch_to_haiku

        jax.config.update("jax_default_matmul_precision", "highest")  # full fp32, as torch: runtime.py
        params = load_params(args.jax_params) if args.jax_params else torch_to_haiku(net)
        rows = jax_lowrank.run_sweep(params, images, labels, fractions, modes, batch_sizes, progress=progress)
        method = f"jax.jit on {jax.default_backend()}, whole batch per call, block_until_ready"
    out_dir = Path(args.out_dir or ("runs/sweep" if args.framework == "torch" else "runs/sweep_jax"))
    source = args.jax_params or args.checkpoint
    info = {"checkpoint": str(source), "checkpoint_meta": meta.get("metrics", meta), "fractions": fractions,
            "modes": modes, "batch_sizes": batch_sizes, "n_test": len(labels), "latency_method": method,
            "plain_nchw_eager_over_dense_paired": reference, "provenance": provenance(device)}
    csv_path, json_path = write_results(rows, out_dir, info)
    plots = plot_sweep({"": rows}, out_dir, tuple(batch_sizes))
    print(format_table(rows, tuple(batch_sizes)))
    if reference is not None:
        dense_us = next(r for r in rows if r["mode"] == "dense")[f"latency_us_b{batch_sizes[0]}"]
        print(f"\nthe plain NCHW eager dense model, timed alternately with the dense row: {reference:.2f}x "
              f"its time (~{reference * dense_us:.0f} us/example), a yardstick for latencies from other days")
    print(f"\ntable: {csv_path}\n       {json_path}\nplots: " + "\n       ".join(str(p) for p in plots))
    return rows


if __name__ == "__main__":
    main()
