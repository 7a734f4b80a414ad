"""Train the take-home network on CIFAR-10 with the fixed recipe (Lightning).

    python scripts/train.py                          # CPU preset, data from $CIFAR10_DIR
    python scripts/train.py --data-dir ../shared/cifar10 --seed 7 --out-dir runs/seed7
    python scripts/train.py --preset seed --device cuda     # the take-home's protocol
    python scripts/train.py --out-dir runs/train --resume       # continue a killed run
    python scripts/train.py --framework jax --out-dir runs/jax  # the JAX/Haiku reference
    python scripts/train.py --pooling haiku --out-dir runs/haiku  # the take-home's code as it runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torch_impl.cli.flags import (
    add_data_args,
    add_progress_arg,
    fail,
    holdout_fraction,
    make_parser,
    nonnegative_int,
    positive_int,
    positive_int_list,
)
from torch_impl.cli.process import flush_denormals, stop_on_signals
from torch_impl.cli.rundir import check_free_disk, own_out_dir
from torch_impl.data import DataError
from torch_impl.model import DEFAULT_POOLING, HIDDEN_WIDTHS, POOLINGS
from torch_impl.parity.jax_training import run_jax_training
from torch_impl.training import PRECISIONS, PRESETS, config_from_preset, run_training

# A Lightning checkpoint holds the weights, Adam's two moments and the EMA: 4 x 85 MB for the
# 21.3 M-parameter network (30.5 M with --pooling haiku: 4 x 122 MB); two of them while one
# replaces the other, and model.pt.
CHECKPOINT_ROOM = (2 * 4 + 1) * 30_462_226 * 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--framework", choices=("torch", "jax"), default="torch",
                   help="torch: Lightning (default); jax: the jax_ref reference, same recipe")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                   help="cpu: batch 128, 3500 steps; seed: batch 1000, 10001 steps (default: cpu)")
    p.add_argument("--steps", type=positive_int, help="optimizer steps (overrides the preset)")
    p.add_argument("--batch-size", type=positive_int, help="training batch (overrides the preset)")
    p.add_argument("--seed", type=nonnegative_int, default=42, help="init and shuffling seed (default: 42)")
    p.add_argument("--pooling", choices=POOLINGS, default=DEFAULT_POOLING,
                   help="spatial: 2x2 pools over H and W, the network the take-home meant (default); haiku: "
                        "the take-home's hk.AvgPool as Haiku runs it, over W and C (30.5 M parameters)")
    p.add_argument("--widths", type=positive_int_list(len(HIDDEN_WIDTHS), "96,64,64,32"),
                   default=",".join(map(str, HIDDEN_WIDTHS)),
                   help="the MLP's four hidden widths (a smaller network trains in seconds: smoke runs, "
                        "the tests' 96,64,64,32); every later script reads them from model.pt")
    p.add_argument("--eval-every", type=positive_int, help="validate the EMA every N steps")
    p.add_argument("--ckpt-every", type=positive_int, help="checkpoint every N steps (resume loses at most N)")
    add_data_args(p)
    p.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision into --data-dir")
    p.add_argument("--out-dir", default="runs/train", help="checkpoints, logs, model.pt, metrics.json")
    p.add_argument("--val-fraction", type=holdout_fraction, help="share of the training images held out (default 0.1)")
    p.add_argument("--train-limit", type=positive_int, help="use only the first N training images (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished or interrupted run in --out-dir (its checkpoints and results)")
    p.add_argument("--precision", choices=PRECISIONS, default="32-true",
                   help="bf16-mixed: bfloat16 autocast for the forward and backward (faster on CPUs with AMX or "
                        "AVX-512 BF16; changes the arithmetic, so off by default and never in parity tests)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training step's forward and backward (Inductor needs a C++ compiler; "
                        "off by default: no faster than eager on the CPUs measured, see README)")
    p.add_argument("--device", default="auto",
                   help="auto (the GPU if any), cpu, cuda, or cuda:N (that GPU); Lightning's accelerator")
    p.add_argument("--accelerator", dest="device", help=argparse.SUPPRESS)  # Lightning's name for --device
    p.add_argument("--devices", default="auto", help="how many devices (passed to lightning.Trainer; with ddp)")
    p.add_argument("--strategy", default="auto", help="passed to lightning.Trainer (e.g. ddp)")
    add_progress_arg(p)
    return p.parse_args(argv)


def lightning_device(device: str, devices: int | str) -> tuple[str, int | str | list[int]]:
    """``--device`` as Lightning's (accelerator, devices): ``cuda:1`` is the GPU with index 1."""
    if device in ("auto", "cpu", "gpu"):
        return device, devices
    if device == "cuda":
        return "gpu", devices
    if device.startswith("cuda:") and device[5:].isdigit():
        return "gpu", [int(device[5:])]
    raise ValueError(f"--device takes auto, cpu, cuda or cuda:N, got {device!r}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/cli/process.py
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    try:
        accelerator, devices = lightning_device(args.device, devices)
        cfg = config_from_preset(
            args.preset, steps=args.steps, batch_size=args.batch_size, seed=args.seed, pooling=args.pooling,
            widths=tuple(args.widths), eval_every=args.eval_every, ckpt_every=args.ckpt_every, data_dir=args.data_dir,
            cache_dir=args.cache_dir, out_dir=args.out_dir, download=args.download,
            val_fraction=args.val_fraction, train_limit=args.train_limit, test_limit=args.test_limit,
            accelerator=accelerator, devices=devices, strategy=args.strategy,
            progress_bar=not args.no_progress_bar, precision=args.precision, compile=args.compile,
        )
        if args.framework == "jax" and args.resume:
            raise ValueError("--resume is for the torch trainer; a jax_ref run restarts from the init")
        if args.framework == "jax" and tuple(args.widths) != HIDDEN_WIDTHS:
            raise ValueError("--widths is for the torch trainer; jax_ref trains the take-home's widths")
        if args.framework == "jax" and (args.precision != "32-true" or args.compile):
            raise ValueError("--precision and --compile are for the torch trainer; jax_ref trains in fp32 under XLA")
    except ValueError as err:
        fail(err)
    # A run's files: another run must not write beside them, nor resume from them unasked.
    markers = ("params.npz", "metrics.json") if args.framework == "jax" else ("model.pt", "metrics.json", "checkpoints")
    resume = ("rerun with --resume to start again from the newest checkpoint in "
              f"{Path(cfg.out_dir) / 'checkpoints'} (one every --ckpt-every steps)" if args.framework == "torch"
              else "rerun with --overwrite: a jax_ref run restarts from the init")
    try:
        with stop_on_signals(resume), own_out_dir(cfg.out_dir, markers, resume=args.resume,
                                                   overwrite=args.overwrite) as out:
            check_free_disk(out, CHECKPOINT_ROOM, "two checkpoints (the last and the one replacing it) and model.pt")
            if args.framework == "jax":
                metrics = run_jax_training(cfg)
            else:
                metrics = run_training(cfg, resume=args.resume)
    except (DataError, FileNotFoundError, ValueError) as err:
        fail(err)
    keys = ("pooling", "precision", "compile", "test_acc_ema", "test_acc_live", "steps", "wall_time_s", "images_per_s")
    summary = {k: metrics[k] for k in keys if k in metrics}
    print(json.dumps(summary, indent=2))
    weights = "params.npz" if args.framework == "jax" else "model.pt"
    print(f"wrote {Path(cfg.out_dir) / weights} and {Path(cfg.out_dir) / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main()
