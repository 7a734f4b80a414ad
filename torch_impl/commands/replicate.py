"""The comparison on several independently trained dense checkpoints: which claims hold in all.

    python scripts/train.py --seed 43 --out-dir runs/seed43       # train the other checkpoints first
    python scripts/replicate.py --checkpoints runs/train/model.pt runs/seed43/model.pt runs/seed44/model.pt
    python scripts/replicate.py --checkpoints A B C --time-cap 600 --recipes "energy tau=0.9;dense int8"

Run i is `compare_methods.py --checkpoint <i-th> --seed i --out-dir <out-dir>/run<i>` (any other
flag is passed on to it), so each run draws its recipes anew too. Rerunning the same command
resumes: a finished run (its compare.json written) is read back, an interrupted one continues
from its points/. Writes <out-dir>/REPLICATION.md and replication.json: per recipe the mean
difference to dense and its spread over the runs, and each claim (recommendations, targets,
verdicts) as "holds in k of n".
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from torch_impl.cli.flags import add_overwrite_arg, fail, make_parser
from torch_impl.commands import compare_methods
from torch_impl.compare.replicate import read_run, replicate, replication_report
from torch_impl.files import write_json, write_text
from torch_impl.provenance import provenance


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = make_parser(__doc__)
    p.add_argument("--checkpoints", nargs="+", required=True,
                   help="dense model.pt files trained with different seeds (at least two)")
    p.add_argument("--out-dir", default="runs/replicate", help="run<i>/ per checkpoint, REPLICATION.md")
    p.add_argument("--report-only", action="store_true", help="rebuild REPLICATION.md from the finished runs")
    add_overwrite_arg(p, "redo every run (passed on to each comparison) instead of reading finished ones back")
    return p.parse_known_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args, passed = parse_args(argv)
    if len(args.checkpoints) < 2:
        fail(ValueError(f"--checkpoints: replication needs at least two dense checkpoints, got "
                        f"{len(args.checkpoints)}; train more with scripts/train.py --seed N"))
    if bad := [a for a in passed if a in ("--checkpoint", "--out-dir", "--seed")]:
        fail(ValueError(f"{bad[0]} is set per run by this command; pass --checkpoints and --out-dir instead"))
    out = Path(args.out_dir)
    runs = []
    for i, ckpt in enumerate(args.checkpoints):
        run_dir = out / f"run{i}"
        if not args.report_only and (args.overwrite or not (run_dir / "compare.json").is_file()):
            print(f"\n=== run {i + 1} of {len(args.checkpoints)}: {ckpt}, recipe seed {i} ===", flush=True)
            try:
                compare_methods.main(["--checkpoint", ckpt, "--out-dir", str(run_dir), "--seed", str(i), *passed,
                                      *(["--overwrite"] if args.overwrite else [])])
            except SystemExit as err:  # a failed recipe or a refused checkpoint: no replication from it
                if err.code not in (None, 0):
                    sys.exit(f"run {i} ({ckpt}) did not finish: {err.code}\nrerun the same command to resume it")
        elif not (run_dir / "compare.json").is_file():
            fail(FileNotFoundError(f"--report-only: run {i} has no {run_dir / 'compare.json'}; run without it"))
        else:
            print(f"run {i + 1}: finished earlier ({run_dir / 'compare.json'}), read back")
        runs.append(read_run(f"run{i}", run_dir))
    rep = replicate(runs)
    command = "replicate.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    write_json(out / "replication.json", {**rep, "provenance": provenance()})
    path = write_text(out / "REPLICATION.md", replication_report(rep, command))
    held = sum(c["holds"] == c["of"] for c in rep["claims"])
    print(f"\n{held} of {len(rep['claims'])} claims hold in all {len(runs)} runs: {path}")
    return rep


if __name__ == "__main__":
    main()
