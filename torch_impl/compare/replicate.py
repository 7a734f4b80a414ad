"""Which claims hold across training runs: one comparison per independently trained dense
checkpoint (its own recipe seed), read back and set side by side.

The intervals of one comparison cover the test set's sampling only; the dense model's seed
and the recipes' draws move a result more. So every claim is counted over the runs ("holds
in k of n"): each recipe's difference to dense (mean, sd and range over the runs), its
verdict, each recommendation's choice, each target. A claim holds when it holds in every run.

Shapes: a run is ``{"label", "compare": compare.json, "targets": targets.json,
"recommended": recommended.json}``; ``replicate`` returns ``{"runs": [...], "methods": {method:
{...}}, "claims": [{"claim", "holds", "of", "per_run"}]}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from torch_impl.measure.stats import MIN_INTERVAL_ROUNDS
from torch_impl.measure.text import verdict

TARGET_LABELS = {"at_svd_0.2_latency": "within 0.5 pp of dense at plain SVD f=0.2's latency",
                 "at_25pct_latency": "within 1.5 pp of dense at 25% of its latency",
                 "fastest_within_1.5pp_on_validation": "the fastest within 1.5 pp of dense on validation is "
                                                       "within 1.5 pp on test"}


def read_run(label: str, out_dir: Path) -> dict[str, Any]:
    return {"label": label, **{k: json.loads((out_dir / f"{k}.json").read_text())
                               for k in ("compare", "targets", "recommended")}}


def _spread(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else float("nan"),
            "min": float(a.min()), "max": float(a.max())}


def _methods(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method in every run: test difference to dense (pp), verdicts, time ratios."""
    rows = [{r["method"]: r for r in run["compare"]["rows"]} for run in runs]
    common = [m for m in rows[0] if all(m in r for r in rows[1:]) and rows[0][m].get("test_diff") is not None]
    sizes = runs[0]["compare"]["batch_sizes"]
    out = {}
    for m in common:
        per = [r[m] for r in rows]
        words = [verdict(p["test_diff"], p["test_diff_lo"], p["test_diff_hi"], p["test_mcnemar_p"]) for p in per]
        out[m] = {"test_diff_pp": [100 * p["test_diff"] for p in per],
                  "test_diff_pp_spread": _spread([100 * p["test_diff"] for p in per]),
                  "val_diff_pp": [100 * p.get("val_diff", float("nan")) for p in per],
                  "verdicts": words,
                  **{f"ratio_b{b}": [p[f"latency_ratio_b{b}"] for p in per] for b in sizes}}
    return out


def _claim(text: str, per_run: list[Any], holds: list[bool | None]) -> dict[str, Any]:
    """``holds``: per run True, False, or None where the run could not decide it."""
    return {"claim": text, "holds": sum(h is True for h in holds), "of": len(holds),
            "undecided": sum(h is None for h in holds), "per_run": per_run}


def _timed(run: dict[str, Any]) -> bool:
    """Whether the run timed enough rounds for latency intervals (a recommendation needs them)."""
    return run["compare"]["timing"]["rounds"]["rounds"] >= MIN_INTERVAL_ROUNDS


def _claims(runs: list[dict[str, Any]], methods: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    claims = []
    first = runs[0]["recommended"]["rows"]
    for i, row in enumerate(first):
        picks = [run["recommended"]["rows"][i] if i < len(run["recommended"]["rows"]) else {} for run in runs]
        claims.append(_claim(f"recommendation \"{row['budget']}\" picks {row['method']}",
                             [p.get("method") if _timed(run) else "undecided: too few timing rounds"
                              for p, run in zip(picks, runs)],
                             [p.get("method") == row["method"] if _timed(run) else None
                              for p, run in zip(picks, runs)]))
    for key, text in TARGET_LABELS.items():
        verdicts = [run["targets"].get(key) for run in runs]
        if all(verdicts):
            claims.append(_claim(f"target: {text}", [v["best"] for v in verdicts], [v["met"] for v in verdicts]))
    for name in sorted(runs[0]["targets"].get("frontier", {})):
        per = [run["targets"]["frontier"][name] for run in runs]
        claims.append(_claim(f"frontier target {name}", [(v["chosen"] or {}).get("method") for v in per],
                             [v["met"] for v in per]))
    for m, v in methods.items():
        for word in sorted(set(v["verdicts"])):
            claims.append(_claim(f"{m}: {word.split(':')[0]}", v["verdicts"],
                                 [w.split(":")[0] == word.split(":")[0] for w in v["verdicts"]]))
    return claims


def replicate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    if len(runs) < 2:
        raise ValueError(f"replication needs at least two runs, got {len(runs)}")
    methods = _methods(runs)
    dense = [next(r for r in run["compare"]["rows"] if r["family"] == "dense") for run in runs]
    return {"runs": [{"label": run["label"], "checkpoint": run["compare"]["checkpoint"],
                      "seed": (run["compare"].get("config") or {}).get("seed"),
                      "dense_test_acc": d["test_acc"], "dense_val_acc": d["val_acc"],
                      "timing": {k: run["compare"]["timing"]["rounds"].get(k)
                                 for k in ("rounds", "stopped_by", "worst_halfwidth")},
                      "aa_control": (run["compare"]["timing"].get("aa_control") or {}).get("interval")}
                     for run, d in zip(runs, dense)],
            "methods": methods, "claims": _claims(runs, methods)}


def _pp(values: list[float]) -> str:
    return ", ".join(f"{v:+.2f}" for v in values)


def replication_report(rep: dict[str, Any], command: str) -> str:
    runs, n = rep["runs"], len(rep["runs"])
    lines = ["# Do the comparison's claims hold across training runs?", "",
             f"Generated by `{command}`. {n} dense checkpoints trained independently (their own seeds), each "
             "compared with its own recipe seed; every number below is one of the runs' comparisons "
             "(`<run>/REPORT.md`).", "",
             "| run | checkpoint | recipe seed | dense test % | dense val % | timing rounds | A/A control b10000 |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in runs:
        aa = r["aa_control"]
        lines.append(f"| {r['label']} | `{r['checkpoint']}` | {r['seed']} | {100 * r['dense_test_acc']:.2f} | "
                     f"{100 * r['dense_val_acc']:.2f} | {r['timing']['rounds']} ({r['timing']['stopped_by']}) | "
                     + (f"[{aa[0]:.3f}, {aa[1]:.3f}]" if aa else "") + " |")
    lines += ["", "## Every recipe: test accuracy minus dense's, across the runs", "",
              "Mean and sd over the runs (the training run's randomness), each run's value, and how often each "
              "verdict was reached (\"no detectable difference\": McNemar p > 0.05 and the 95% interval "
              "contains 0).", "",
              "| method | mean pp | sd pp | per run pp | verdicts | x dense b10000 per run | x dense b1 per run |",
              "|---|---:|---:|---|---|---|---|"]
    for m, v in rep["methods"].items():
        s = v["test_diff_pp_spread"]
        counts = {w: v["verdicts"].count(w) for w in dict.fromkeys(v["verdicts"])}
        words = "; ".join(f"{w} ({k} of {n})" for w, k in counts.items())
        ratios = [", ".join(f"{x:.3f}" for x in v.get(f"ratio_b{b}", [])) for b in (10_000, 1)]
        lines.append(f"| {m} | {s['mean']:+.2f} | {s['sd']:.2f} | {_pp(v['test_diff_pp'])} | {words} | "
                     f"{ratios[0]} | {ratios[1]} |")
    lines += ["", "## Claims, counted over the runs", "", "| claim | holds | per run |", "|---|---:|---|"]
    for c in rep["claims"]:
        if c["claim"].split(": ")[0] in rep["methods"]:
            continue  # the per-recipe verdicts are the table above
        per = "; ".join(str(p) for p in c["per_run"])
        undecided = f" ({c['undecided']} undecided)" if c.get("undecided") else ""
        lines.append(f"| {c['claim']} | {c['holds']} of {c['of']}{undecided} | {per} |")
    held = [c for c in rep["claims"] if c["holds"] == c["of"]]
    lines += ["", f"{len(held)} of {len(rep['claims'])} claims (recommendations, targets, per-recipe verdicts) "
              f"hold in all {n} runs; a claim that holds in fewer is one a retrain can overturn."]
    return "\n".join(lines) + "\n"
