"""Sweep SVD rank fractions of a trained network: accuracy, latency, parameters, MACs, plots.

    python scripts/sweep_ranks.py                                   # runs/train/model.pt
    python scripts/sweep_ranks.py --checkpoint runs/s7/model.pt --fractions 1.0,0.5,0.2,0.1
    python scripts/sweep_ranks.py --framework jax                   # the JAX/Haiku reference
    python scripts/sweep_ranks.py --haiku-params runs/jax/params.npz     # Haiku parameters, into torch
    python scripts/sweep_ranks.py --framework jax --haiku-params runs/jax/params.npz
    python scripts/sweep_ranks.py --haiku-params params.pkl --trust-pickle  # a take-home user's pickle

Haiku parameters (a dict {'conv2_d': {'w', 'b'}, ..., 'linear_4': {...}} as the take-home's
code makes them, or jax_ref's names) load into the network their shapes match: the
take-home's code as it runs (pools over W and C) or the spatial one.

Writes <out-dir>/sweep.csv, sweep.json (with provenance) and three PNG plots.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from torch_impl.checkpoint import load_model
from torch_impl.cli.flags import (
    add_checkpoint_arg,
    add_data_args,
    add_device_arg,
    add_overwrite_arg,
    add_progress_arg,
    add_timing_args,
    arg_type,
    fail,
    make_parser,
    positive_int_list,
    run_in_out_dir,
    timing_protocol,
)
from torch_impl.cli.process import flush_denormals, full_fp32, resolve_device
from torch_impl.data import CIFAR10DataModule, DataError
from torch_impl.lowrank import MODES
from torch_impl.measure.plots import plot_sweep
from torch_impl.measure.results import write_results
from torch_impl.measure.sweep import DEFAULT_FRACTIONS, format_table, parse_fractions, run_sweep
from torch_impl.measure.text import describe_timing
from torch_impl.parity.haiku_convert import haiku_to_torch, load_haiku_params, torch_to_haiku
from torch_impl.parity.jax_sweep import jax_full_fp32, jax_sweep
from torch_impl.provenance import provenance

ROUNDS_FILE = "rounds.jsonl"  # timing rounds kept as they finish (torch_impl/measure/round_journal.py)


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"--modes takes {','.join(MODES)} (one or both), got {text!r}")
    return modes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    add_checkpoint_arg(p)
    p.add_argument("--framework", choices=("torch", "jax"), default="torch",
                   help="torch: the Lightning model; jax: the jax_ref reference on the same weights")
    p.add_argument("--haiku-params", "--jax-params", dest="haiku_params", metavar="FILE",
                   help="sweep these Haiku parameters (.npz with module/name keys, e.g. from "
                        "`train.py --framework jax`; or a pickle with --trust-pickle) instead of --checkpoint")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow --haiku-params to be a pickle (.pkl): loading one can run any code it holds")
    p.add_argument("--fractions", type=arg_type(parse_fractions), default=",".join(str(f) for f in DEFAULT_FRACTIONS),
                   help="rank fractions in (0, 1], comma-separated")
    p.add_argument("--modes", type=arg_type(parse_modes), default=",".join(MODES), help="factorized,reconstructed")
    p.add_argument("--batch-sizes", type=positive_int_list(2), default="10000,1",
                   help="the two latency batch sizes: large, then small (default 10000,1)")
    add_data_args(p)
    p.add_argument("--out-dir", help="default: runs/sweep (torch) or runs/sweep_jax")
    p.add_argument("--yardstick", action=argparse.BooleanOptionalAction, default=True,
                   help="on CPU, also time the dense model run the plain way (NCHW, one call), which puts latencies "
                        "from different days on one scale")
    add_overwrite_arg(p)
    add_device_arg(p)
    add_timing_args(p, time_cap_s=1200)
    add_progress_arg(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/cli/process.py
    out_dir = Path(args.out_dir or ("runs/sweep" if args.framework == "torch" else "runs/sweep_jax"))
    return run_in_out_dir(out_dir, ("sweep.json", "sweep.csv"), args.overwrite, lambda out: _run(args, out))


def _run(args: argparse.Namespace, out_dir: Path) -> list[dict]:
    try:
        protocol = timing_protocol(args)
        fractions, modes, batch_sizes = args.fractions, args.modes, args.batch_sizes
        device = resolve_device(args.device)
        # the model before the data: a mistyped path must not cost the data's decode first
        if args.haiku_params:
            haiku = load_haiku_params(args.haiku_params, trust_pickle=args.trust_pickle)
            net, meta = haiku_to_torch(haiku).eval(), {"haiku_params": str(args.haiku_params)}
        else:
            net, meta = load_model(args.checkpoint)
            haiku = None
        dm = CIFAR10DataModule(args.data_dir, args.cache_dir, test_limit=args.test_limit)
        images, labels = dm.numpy_splits()["test"]
        batch_sizes = [min(b, len(labels)) for b in batch_sizes]
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(err)
    progress = not args.no_progress_bar
    timing = {}
    origin = provenance(device)  # the code and machine as the run starts (the tree may change while it runs)
    full_fp32()
    if args.framework == "torch":
        # yardstick: how fast is the machine today, by inference.PlainEager's time over the harness's
        rows, timing = run_sweep(net, torch.from_numpy(images), torch.from_numpy(labels), fractions, modes,
                                 batch_sizes, progress=progress, yardstick=args.yardstick and device.type == "cpu",
                                 device=device, journal=out_dir / ROUNDS_FILE,  # a killed run's rounds are kept
                                 protocol=protocol)
        method = timing["rounds"]["method"]
    else:
        method = jax_full_fp32()  # the arithmetic torch uses
        params = haiku if haiku is not None else torch_to_haiku(net)
        rows = jax_sweep(params, images, labels, fractions, modes, batch_sizes, progress=progress)
    source = args.haiku_params or args.checkpoint
    info = {"checkpoint": str(source), "checkpoint_meta": meta.get("metrics", meta), "pooling": net.pooling,
            "fractions": fractions,
            "modes": modes, "batch_sizes": batch_sizes, "n_test": len(labels), "latency_method": method,
            "timing": timing, "provenance": origin}
    csv_path, json_path = write_results(rows, out_dir, info)
    (out_dir / ROUNDS_FILE).unlink(missing_ok=True)  # the rounds are in sweep.json now
    plots = plot_sweep({"": rows}, out_dir, tuple(batch_sizes))
    print(format_table(rows, tuple(batch_sizes)))
    print(describe_timing(timing))
    print(f"\ntable: {csv_path}\n       {json_path}\nplots: " + "\n       ".join(str(p) for p in plots))
    return rows


if __name__ == "__main__":
    main()
