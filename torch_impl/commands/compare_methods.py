"""Every compression method on one trained checkpoint: accuracy, latency, one Pareto plot, REPORT.md.

    python scripts/compare_methods.py                         # runs/train/model.pt -> runs/compare
    python scripts/compare_methods.py --list                  # the recipes' names; * marks the default set
    python scripts/compare_methods.py --recipes all --out-dir runs/compare_all   # every recipe (hours)
    python scripts/compare_methods.py --recipes "SVD f=0.2;dense int8" --test-limit 2000   # a quick look

The default set is the one that decides: the take-home's plain-SVD points, the recipes on the
front, and the controls. Timing races: a model stops being timed once its interval is within
--target, or once a model at least as accurate on validation is clearly faster.
Each recipe's model is kept in <out-dir>/points/ as soon as it is built: rerunning the same
command after a kill or a crash loads the finished ones and builds only the rest (--overwrite
rebuilds all). A recipe that fails is reported at the end (exit status 1); the others run.
REPORT.md and recommended.json open with the recommendation: per latency budget, the model
chosen on validation, with its test difference and time ratio.

Methods (torch_impl/compare/recipes.py): plain SVD, per-layer ranks (energy and MAC-budget rules),
data-aware factors, recovery fine-tuning, low-rank convolutions, a smaller head, magnitude
pruning, dynamic int8, and combinations. Writes compare.csv/json, pareto.png and REPORT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from torch_impl.checkpoint import check_held_out, load_model
from torch_impl.cli.flags import (
    add_checkpoint_arg,
    add_data_args,
    add_overwrite_arg,
    add_progress_arg,
    add_timing_args,
    fail,
    make_parser,
    positive_int,
    run_in_out_dir,
    timing_protocol,
)
from torch_impl.cli.process import flush_denormals
from torch_impl.cli.rundir import check_free_disk
from torch_impl.compare.config import CompareConfig
from torch_impl.compare.points import ROUNDS_FILE, Points
from torch_impl.compare.recipes import default_recipes
from torch_impl.compare.recommend import recommendation_table
from torch_impl.compare.run import (
    SAVE_CHOICES,
    check_fold_budget,
    make_context,
    rewrite_outputs,
    run_comparison,
    select_recipes,
    write_outputs,
)
from torch_impl.data import CIFAR10DataModule, DataError
from torch_impl.deploy.combos import RUNTIMES
from torch_impl.deploy.layer_runners import layer_runner
from torch_impl.deploy.precision import PRECISIONS, Unsupported
from torch_impl.files import sha256
from torch_impl.measure.latency import batch_sizes_for
from torch_impl.measure.latency_table import eager_fp32
from torch_impl.measure.results import Result
from torch_impl.measure.size import stored_bytes
from torch_impl.measure.text import describe_timing
from torch_impl.provenance import provenance


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    add_checkpoint_arg(p)
    p.add_argument("--out-dir", default="runs/compare", help="REPORT.md, recommended.json, tables, models/, points/")
    d = CompareConfig()
    p.add_argument("--finetune-steps", type=positive_int, default=d.finetune_steps,
                   help="recovery fine-tune length (batch 128)")
    p.add_argument("--distill-steps", type=positive_int, default=d.distill_steps,
                   help="fine-tune length of the distilled recipes (the pool-folded trunk)")
    p.add_argument("--long-distill-steps", type=positive_int, default=d.long_distill_steps,
                   help="length of the longer, cosine-rate distillations and of the nested-rank one")
    p.add_argument("--fold-budget", type=positive_int, default=d.fold_budget,
                   help="MLP MAC budget of the tightest pool-folded recipe")
    p.add_argument("--calib-images", type=positive_int, default=d.calib_images,
                   help="training images for the data-aware factors")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="the recipes' draws: calibration images, fine-tunes' data order and init, nested ranks")
    p.add_argument("--rank-runtime", choices=RUNTIMES, default=d.rank_runtime,
                   help="the runtime the measured-latency rank rule's table is timed in (the one you deploy to)")
    p.add_argument("--rank-precision", choices=PRECISIONS, default=d.rank_precision,
                   help="the precision that table is timed in")
    p.add_argument("--recipes", default="default",
                   help="default (the set that decides), all, or semicolon-separated names (see --list)")
    p.add_argument("--only", dest="recipes", help=argparse.SUPPRESS)  # the older name of --recipes
    p.add_argument("--list", action="store_true", help="print the recipes' names (* marks the default set) and exit")
    p.add_argument("--save-models", choices=SAVE_CHOICES, default="front",
                   help="which models to keep in <out-dir>/models/ (safetensors + manifest.json; load them with "
                        "torch_impl.artifact.load_compressed): the Pareto front (default), all, or none")
    add_data_args(p)
    p.add_argument("--assume-held-out", action="store_true",
                   help="use a checkpoint that records no training split, assuming it never trained on the "
                        "validation images (the report says so)")
    add_timing_args(p, time_cap_s=1800)
    add_overwrite_arg(p, "rebuild every recipe's model instead of loading those an earlier run finished "
                         "(needed after a retrain: points of another checkpoint are refused)")
    p.add_argument("--force", dest="overwrite", action="store_true", help=argparse.SUPPRESS)  # the older name
    p.add_argument("--device", choices=("cpu",), default="cpu",
                   help="where models are built, scored and timed; the comparison's latency budgets are the CPU's")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild pareto.png, targets.json and REPORT.md from <out-dir>/compare.json")
    add_progress_arg(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.list:
        for r in default_recipes():
            print(f"{'*' if r.core else ' '} {r.name}")
        return []
    flush_denormals()  # before any parallel torch op: see torch_impl/cli/process.py
    # No finished-run markers: rerunning the same command resumes (points/), and rewrites the results.
    return run_in_out_dir(args.out_dir, (), False, lambda out: _run(args, out))


def _run(args: argparse.Namespace, out_dir: Path) -> list[dict]:
    try:
        protocol = timing_protocol(args)
        if args.report_only:
            paths = rewrite_outputs(out_dir)
            print("\n".join(f"{k}: {v}" for k, v in paths.items()))
            return []
        dense, dense_meta = load_model(args.checkpoint)
        dm = CIFAR10DataModule(args.data_dir, args.cache_dir, batch_size=128, test_limit=args.test_limit,
                               shuffle_seed=args.seed)
        splits = {k: tuple(torch.from_numpy(a) for a in v) for k, v in dm.numpy_splits().items()}
        if not len(splits["val"][1]):
            raise ValueError("the validation split is empty; every choice is made on it")
        split = dm.split_record()
        split["checkpoint"] = check_held_out(args.checkpoint, dense_meta, split, assume=args.assume_held_out)
        if dense.pooling == "spatial":
            check_fold_budget(dense, args.fold_budget)
        else:
            print(f"the checkpoint holds the {dense.pooling!r} network (pools over W and C): the recipes that "
                  "fold or prune around spatial pools do not apply and are left out")
        config = CompareConfig(finetune_steps=args.finetune_steps, distill_steps=args.distill_steps,
                               long_distill_steps=args.long_distill_steps, fold_budget=args.fold_budget,
                               calib_images=args.calib_images, pooling=dense.pooling, seed=args.seed,
                               rank_runtime=args.rank_runtime, rank_precision=args.rank_precision)
        runner = (layer_runner(args.rank_runtime, args.rank_precision, out_dir / "layer_onnx")
                  if (args.rank_runtime, args.rank_precision) != ("eager", "fp32") else eager_fp32)
        recipes = select_recipes(default_recipes(config), args.recipes)
        # none of the points is larger than the dense model
        check_free_disk(out_dir, len(recipes) * stored_bytes(dense), f"keeping {len(recipes)} models in points/")
        points = Points(out_dir / "points", {
            "checkpoint_sha256": sha256(args.checkpoint), **config.as_dict(),
            "n_train": len(dm.numpy_splits()["train"][1]), "n_val": len(splits["val"][1]),
            "test_limit": args.test_limit}, force=args.overwrite)
    except (DataError, ValueError, FileNotFoundError, Unsupported) as err:
        fail(err)
    origin = provenance()  # the code and machine as the run starts (the tree may change while it runs)
    ctx = make_context(dense, dm, config.calib_images, seed=config.seed, layer_runner=runner,
                       layer_runtime=(config.rank_runtime, config.rank_precision))

    def show(r: Result) -> None:
        print(f"{r.method:<52} validation {100 * r.val_acc:6.2f}%  test {100 * r.test_acc:6.2f}%", flush=True)

    n_test = len(splits["test"][1])
    rows, timing = run_comparison(recipes, ctx, splits["val"], splits["test"], progress=not args.no_progress_bar,
                                  on_row=show, models_dir=out_dir / "models", save=args.save_models, points=points,
                                  protocol=protocol)
    meta = {"checkpoint": args.checkpoint, "n_test": n_test, "n_val": len(splits["val"][1]),
            "batch_sizes": batch_sizes_for(n_test), "config": config.as_dict(), "timing": timing, "split": split,
            "provenance": origin}
    paths = write_outputs(rows, out_dir, meta)
    (points.root / ROUNDS_FILE).unlink(missing_ok=True)  # the rounds are in compare.json now
    print(describe_timing(timing))
    print("\n" + "\n".join(f"{k}: {v}" for k, v in paths.items()))
    print("\nrecommended (chosen on validation; test difference and time over dense with 95% intervals):\n"
          + recommendation_table(json.loads(paths["recommended"].read_text())["rows"]))
    if points.skipped:
        print(f"\nloaded {len(points.skipped)} finished model(s) from {points.root} instead of building them: "
              + "; ".join(points.skipped))
    if timing["failures"]:
        sys.exit(f"\n{len(timing['failures'])} recipe(s) failed (kept out of the table; the report lists them): "
                 + "; ".join(f"{f['method']}: {f['error']}" for f in timing["failures"])
                 + "\nrerun the same command to try them again; finished models are loaded, not rebuilt")
    return rows


if __name__ == "__main__":
    main()
