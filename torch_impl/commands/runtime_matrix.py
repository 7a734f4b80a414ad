"""Dense and compressed models in torch eager, torch.compile and ONNX Runtime, timed together.

    python scripts/runtime_matrix.py --compare-dir runs/compare          # dense + every saved model there
    python scripts/runtime_matrix.py --checkpoint runs/train/model.pt --models DIR [DIR ...]

Each model runs in every runtime it can, all in one set of interleaved timing rounds, and is
compared with dense *in the same runtime* (torch_impl/deploy/runtimes.py). Writes runtimes.csv/json,
runtimes.png and RUNTIMES.md (the table and, per runtime, whether low rank speeds it up) to
--out-dir (default: <compare-dir>/runtimes). Needs the deploy extra: pip install -e ".[deploy]".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch_impl.artifact import load_compressed
from torch_impl.checkpoint import load_model
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
from torch_impl.deploy.report import matrix_report, matrix_table, runtime_plot, write_matrix
from torch_impl.deploy.runtimes import runtime_matrix
from torch_impl.files import write_text
from torch_impl.measure.latency import batch_sizes_for
from torch_impl.provenance import provenance


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    add_checkpoint_arg(p)
    p.add_argument("--compare-dir", help="a compare_methods.py --out-dir: time every model saved in its models/")
    p.add_argument("--models", nargs="*", default=[], help="saved model directories (manifest.json inside)")
    p.add_argument("--out-dir", help="default: <compare-dir>/runtimes, else runs/runtimes")
    add_overwrite_arg(p)
    add_data_args(p)
    add_timing_args(p, time_cap_s=1200)
    add_progress_arg(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/cli/process.py
    dirs = saved_model_dirs(args.models, args.compare_dir)
    out_dir = Path(args.out_dir or (Path(args.compare_dir) / "runtimes" if args.compare_dir else "runs/runtimes"))
    return run_in_out_dir(out_dir, ("runtimes.json", "RUNTIMES.md"), args.overwrite, lambda out: _run(args, dirs, out))


def _run(args: argparse.Namespace, dirs: list[Path], out_dir: Path) -> list[dict]:
    try:
        protocol = timing_protocol(args)
        dense, _ = load_model(args.checkpoint)
        models = {"dense": dense}
        for d in dirs:
            model, manifest = load_compressed(d)
            if manifest["method"].get("method") != "dense":
                models[manifest["method"].get("method") or d.name] = model
        dm = CIFAR10DataModule(args.data_dir, args.cache_dir, test_limit=args.test_limit)
        images, labels = dm.numpy_splits()["test"]
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(err)
    batch_sizes = batch_sizes_for(len(labels))
    origin = provenance()
    rows, timing = runtime_matrix(models, images, labels, out_dir / "onnx", batch_sizes,
                                  progress=not args.no_progress_bar, protocol=protocol)
    meta = {"checkpoint": args.checkpoint, "models": [str(d) for d in dirs], "n_test": len(labels),
            "batch_sizes": batch_sizes, "timing": timing, "provenance": origin}
    write_matrix(rows, out_dir, meta)
    plot = runtime_plot(rows, out_dir / "runtimes.png", batch_sizes)
    report = write_text(out_dir / "RUNTIMES.md", matrix_report(rows, batch_sizes, meta, plot))
    print(matrix_table(rows, batch_sizes))
    print(f"\nreport: {report}")
    return rows


if __name__ == "__main__":
    main()
