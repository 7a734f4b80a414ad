"""The deployment frontier: every compressed model in every precision and runtime, against dense fp32 eager.

    python scripts/deploy_frontier.py --compare-dir runs/compare      # dense + the models saved there
    python scripts/deploy_frontier.py --models DIR [DIR ...] --precisions fp32 int8-static

Builds each model in fp32, bf16, int8-dynamic and int8-static on eager, torch.compile, ONNX Runtime
and OpenVINO (torch_impl/deploy/), screens out what cannot meet any budget, scores the rest on
validation (choices) and test (verdicts), times them in one set of interleaved rounds beside dense
fp32 eager, judges the four targets, saves each winner in the form that runs it under
<out-dir>/deployed/, and reloads those in a fresh process (scripts/verify_models.py) to show their
accuracy. Writes FRONTIER.md, frontier.json and frontier.csv. Needs: pip install -e ".[deploy]".
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from torch_impl.artifact import load_compressed
from torch_impl.checkpoint import check_held_out, load_model
from torch_impl.cli.flags import (
    add_checkpoint_arg,
    add_data_args,
    add_overwrite_arg,
    add_progress_arg,
    add_timing_args,
    fail,
    make_parser,
    run_in_out_dir,
    saved_model_dirs,
    timing_protocol,
)
from torch_impl.cli.process import flush_denormals
from torch_impl.data import CIFAR10DataModule, DataError
from torch_impl.deploy.bundle import save_deployment
from torch_impl.deploy.combos import RUNTIMES, OnnxFiles
from torch_impl.deploy.frontier import (
    AA_KEY,
    DENSE,
    REFERENCE,
    FrontierConfig,
    build_all,
    calls_for,
    key,
    score,
    screen,
    screen_limits,
    time_all,
)
from torch_impl.deploy.frontier_report import (
    recommendation,
    recommendation_table,
    rewrite_frontier,
    winners,
    write_frontier,
)
from torch_impl.deploy.precision import PRECISIONS, calibration_images
from torch_impl.measure.latency import aa_check, batch_sizes_for
from torch_impl.measure.text import split_text
from torch_impl.provenance import provenance


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    add_checkpoint_arg(p)
    p.add_argument("--compare-dir", help="a compare_methods.py --out-dir: every fp32 model saved in its models/")
    p.add_argument("--models", nargs="*", default=[], help="saved model directories (manifest.json inside)")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS), help="precisions to build")
    p.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES), help="runtimes to build")
    p.add_argument("--seed", type=int, default=0, help="the draw of static int8's calibration images")
    p.add_argument("--assume-held-out", action="store_true",
                   help="trust that a checkpoint recording no training split never saw the validation images")
    p.add_argument("--out-dir", help="default: <compare-dir>/deploy, else runs/deploy")
    p.add_argument("--report-only", action="store_true", help="rewrite FRONTIER.md from <out-dir>/frontier.json")
    add_overwrite_arg(p)
    add_data_args(p)
    add_timing_args(p, time_cap_s=1800)
    add_progress_arg(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/cli/process.py
    dirs = saved_model_dirs(args.models, args.compare_dir)
    out_dir = Path(args.out_dir or (Path(args.compare_dir) / "deploy" if args.compare_dir else "runs/deploy"))
    if args.report_only:
        try:
            print(f"report: {rewrite_frontier(out_dir)}")
        except ValueError as err:
            fail(err)
        return []
    return run_in_out_dir(out_dir, ("frontier.json", "FRONTIER.md"), args.overwrite, lambda out: _run(args, dirs, out))


def _load(args: argparse.Namespace, dirs: list[Path]) -> tuple[dict, dict, dict]:
    dense, dense_meta = load_model(args.checkpoint)
    models = {DENSE: dense}
    for d in dirs:
        model, manifest = load_compressed(d)
        method = manifest["method"]
        if method.get("family") == "dense" or method.get("int8"):
            continue  # dense is built from the checkpoint; int8 is a precision applied here to every model
        models[method.get("method") or d.name] = model
    dm = CIFAR10DataModule(args.data_dir, args.cache_dir, test_limit=args.test_limit)
    splits = dm.numpy_splits()
    if not len(splits["val"][1]):
        raise ValueError("the validation split is empty; every choice is made on it")
    split = dm.split_record()
    split["checkpoint"] = check_held_out(args.checkpoint, dense_meta, split, assume=args.assume_held_out)
    return models, splits, split


def _run(args: argparse.Namespace, dirs: list[Path], out_dir: Path) -> list[dict]:
    try:
        protocol = timing_protocol(args)
        models, splits, split = _load(args, dirs)
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(err)
    origin = provenance()
    progress = not args.no_progress_bar
    config = FrontierConfig(tuple(args.precisions), tuple(args.runtimes), protocol=protocol)
    if "fp32" not in config.precisions or "eager" not in config.runtimes:
        fail("the reference is dense fp32 eager: keep fp32 in --precisions and eager in --runtimes")
    files = OnnxFiles(out_dir / "onnx", calibration_images(splits["train"][0], args.seed))
    threads = torch.get_num_threads()
    built, skipped = build_all(models, config, files, threads, progress)
    images, labels = splits["test"]
    batch_sizes = batch_sizes_for(len(labels))
    calls = {n: calls_for(b, images, batch_sizes) for n, b in built.items()}
    keep = {AA_KEY, *(key(DENSE, "fp32", r) for r in config.runtimes)}
    screened = screen(calls, screen_limits(batch_sizes, config.screen_margin), keep)
    for name in screened:
        print(f"screened out {name}: {screened[name]['why']}", flush=True)
        built.pop(name)
    results = score(built, {"val": splits["val"], "test": splits["test"]}, progress)
    rounds = time_all(built, results, images, batch_sizes, protocol, progress, calls)
    rows = list(results.values())
    saved = _save_winners(rows, built, out_dir, threads)
    aa = rounds.stats[AA_KEY]
    meta = {"command": "python scripts/deploy_frontier.py " + shlex.join(sys.argv[1:]),
            "checkpoint": args.checkpoint, "models": [str(d) for d in dirs], "n_val": len(splits["val"][1]),
            "n_test": len(labels), "batch_sizes": batch_sizes, "split": split, "split_text": split_text(split),
            "config": {"precisions": config.precisions, "runtimes": config.runtimes, "seed": args.seed,
                       "screen_margin": config.screen_margin},
            "timing": rounds.summary(), "aa_control": {b: [s.ratio, s.ratio_lo, s.ratio_hi] for b, s in aa.items()},
            "aa_warning": aa_check(aa), "provenance": origin}
    recs = recommendation(rows, saved)
    meta["reload"] = _reload(list(saved.values()), args)
    report = write_frontier(out_dir, rows, meta, recs, screened, skipped)
    print(recommendation_table(recs))
    print(f"\nreport: {report}")
    return [r.to_row() for r in rows]


def _save_winners(rows: list, built: dict, out_dir: Path, threads: int) -> dict[str, str]:
    """Each winner saved under <out-dir>/deployed/<model>--<precision>--<runtime>/."""
    saved = {}
    for k in winners(rows):
        r = next(x for x in rows if x.method == k)
        if k == REFERENCE:
            continue
        slug = "--".join(re.sub(r"[^a-z0-9.]+", "-", part.lower()).strip("-")[:60] for part in k.split(" | "))
        directory = out_dir / "deployed" / slug
        save_deployment(directory, built[k], r.settings["runtime"], r.settings["precision"], threads,
                        metrics={"test_acc": r.test_acc, "val_acc": r.val_acc, "n_test": r.get("n_test"),
                                 "test_logits_sha256": r.get("test_logits_sha256")},
                        method={"key": k, **r.settings})
        saved[k] = str(directory)
    return saved


def _reload(dirs: list[str], args: argparse.Namespace) -> str:
    """scripts/verify_models.py on the saved winners, in a fresh process; its output."""
    if not dirs:
        return ""
    cmd = [sys.executable, "-m", "torch_impl.commands.verify_models", *dirs]
    for flag in ("data_dir", "cache_dir"):
        if getattr(args, flag):
            cmd += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    text = f"$ python scripts/verify_models.py {' '.join(dirs)}\n{done.stdout}{done.stderr[-2000:]}"
    print(text)
    return text


if __name__ == "__main__":
    main()
