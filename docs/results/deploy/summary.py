"""The deployment frontier on several checkpoints: each target's verdict and row, and the budgets' picks.

    python docs/results/deploy/summary.py docs/results/deploy/seed4{2,3,4}

Reads each run's frontier.json (scripts/deploy_frontier.py) and prints Markdown: per target, met
or missed on each checkpoint with the row chosen on validation (its test difference and time
ratio), then each budget's recommended combination per checkpoint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _name(key: str) -> str:
    """"model | precision | runtime" without the pipes a Markdown table would split on."""
    return key.replace(" | ", ", ")


def _row(r: dict | None) -> str:
    if r is None:
        return "no row that fast"
    lo, hi = r["d_acc_pp_interval"]
    return f"{_name(r['method'])}: {r['d_acc_pp']:+.2f} pp [{lo:+.2f}, {hi:+.2f}], {r['ratio']:.3f}x"


def main(dirs: list[str]) -> None:
    runs = {Path(d).name: json.loads((Path(d) / "frontier.json").read_text()) for d in dirs}
    print("| target | " + " | ".join(runs) + " |\n|---|" + "---|" * len(runs))
    for t in ("A", "B", "C", "D"):
        cells = []
        for data in runs.values():
            v = data["targets"][t]
            cells.append(("**met**: " if v["met"] else "missed: ") + _row(v["chosen"]))
        print(f"| {t} | " + " | ".join(cells) + " |")
    print("\n| budget | " + " | ".join(runs) + " |\n|---|" + "---|" * len(runs))
    budgets = [r["budget"] for r in next(iter(runs.values()))["recommendation"]]
    for i, budget in enumerate(budgets):
        cells = []
        for data in runs.values():
            r = data["recommendation"][i]
            cells.append("none qualifies" if r["key"] is None else
                         f"{_name(r['key'])}: {r['test_diff_pp'][0]:+.2f} pp [{r['test_diff_pp'][1]:+.2f}, "
                         f"{r['test_diff_pp'][2]:+.2f}], {r['ratio'][0]:.3f}x "
                         f"[{r['ratio'][1]:.3f}, {r['ratio'][2]:.3f}]")
        print(f"| {budget} | " + " | ".join(cells) + " |")
    for name, data in runs.items():
        t = data["timing"]
        aa = "; ".join(f"{v[0]:.3f}x [{v[1]:.3f}, {v[2]:.3f}] at batch {b}" for b, v in data["aa_control"].items())
        print(f"\n{name}: {t['rounds']} timing rounds in {t['elapsed_s']:.0f} s ({t['stopped_by']}); A/A control {aa}")


if __name__ == "__main__":
    main(sys.argv[1:])
