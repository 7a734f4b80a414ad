"""How fast does the recipe train? Ways of running it, timed side by side in one run.

    python scripts/bench_training.py                       # every way, 5 blocks
    python scripts/bench_training.py --ways eager,compiled --blocks 8 --steps 40
    python scripts/bench_training.py --framework jax       # jax_ref's fused step against two programs

Prints images/s per way and its speed-up over the first way listed, with a 95% interval
over blocks, beside an A/A control (the first way run again under another name); writes
<out-dir>/bench_training_<framework>.json with provenance. Ways (TrainConfig overrides):
  eager          the plain Lightning step, fp32 (the default)
  compiled       the training forward and backward under torch.compile, fp32 (opt-in: --compile)
  bf16           eager under bf16-mixed autocast (opt-in: changes the arithmetic)
  bf16-compiled  both
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch_impl.cli.flags import add_data_args, add_progress_arg, fail, make_parser, positive_int
from torch_impl.cli.process import flush_denormals
from torch_impl.data import DataError
from torch_impl.files import write_json
from torch_impl.measure.train_bench import bench, format_rows
from torch_impl.parity.jax_training import bench_jax
from torch_impl.provenance import provenance
from torch_impl.training import config_from_preset

WAYS = {
    "eager": {"compile": False, "precision": "32-true"},
    "compiled": {"compile": True, "precision": "32-true"},
    "bf16": {"compile": False, "precision": "bf16-mixed"},
    "bf16-compiled": {"compile": True, "precision": "bf16-mixed"},
}


def parse_ways(text: str) -> list[str]:
    ways = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in ways if w not in WAYS]
    if not ways or unknown:
        raise ValueError(f"--ways takes comma-separated names from {', '.join(WAYS)}; got {text!r}")
    return ways


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--framework", choices=("torch", "jax"), default="torch", help="which trainer to time")
    p.add_argument("--ways", default=",".join(WAYS), help="comma-separated; the first is the baseline (torch)")
    p.add_argument("--blocks", type=positive_int, default=5, help="blocks (every way once each)")
    p.add_argument("--steps", type=positive_int, default=40, help="timed steps per way and block")
    p.add_argument("--warmup", type=positive_int, default=10, help="untimed steps first (compilation)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="training batch")
    p.add_argument("--out-dir", default="runs/bench_training", help="where the results go")
    add_data_args(p)
    add_progress_arg(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/cli/process.py
    try:
        ways = parse_ways(args.ways)
        base = config_from_preset("cpu", batch_size=args.batch_size, data_dir=args.data_dir, cache_dir=args.cache_dir)
        origin = provenance(seed=base.seed)
        if args.framework == "jax":
            result = bench_jax(base, args.blocks, args.steps, progress=not args.no_progress_bar)
        else:
            result = bench({w: WAYS[w] for w in ways}, base, args.blocks, args.steps, args.warmup,
                           progress=not args.no_progress_bar)
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(err)
    result["provenance"] = origin
    print(format_rows(result))
    path = write_json(Path(args.out_dir) / f"bench_training_{args.framework}.json", result)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
