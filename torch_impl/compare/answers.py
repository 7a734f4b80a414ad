"""The take-home's questions, answered from the comparison's results (each claim cites its number).

Nothing here is hard-coded: a claim is only made when the results it needs were measured,
they are found by what was done to each model (``Result.settings``), never by display
names or flag values, and the wording follows the measurement and its interval ("faster"
only when the latency interval lies below 1.0; "no detectable difference" only when McNemar's
p is above 0.05 and the paired interval contains 0, ``text.verdict``). Which row wins is decided on validation accuracy;
test accuracy is only reported (``pareto_front`` reads no test number).
"""

from __future__ import annotations

import math

from torch_impl.measure.results import Result, control_of, dense_of, find
from torch_impl.measure.text import diff_text, ratio_text


def time_vs_dense(r: Result, b: int | None = None) -> str:
    """``0.512x [0.498, 0.526]``: time over dense at batch ``b`` (default: the largest)."""
    return ratio_text(r, b, unit="x")


def acc_change(r: Result) -> str:
    """``-0.41 pp [-0.62, -0.20], p = 0.0003``: test accuracy minus dense's."""
    return diff_text(r, prose=True)


def faster(r: Result) -> str:
    lo, hi = r.ratio_interval()
    return "faster" if hi < 1.0 else "slower" if lo > 1.0 else "no faster or slower within the interval"


def _untrained(r: Result) -> bool:
    """Compressed and measured as is: no fine-tune, no int8 on top."""
    return not r.settings.get("finetune_steps") and not r.settings.get("int8")


def pareto_front(results: list[Result]) -> list[Result]:
    """Results no other result beats on both validation accuracy and latency ratio, fastest
    first (the A/A control is not a method)."""
    front, best_acc = [], -1.0
    for r in sorted((r for r in results if r.family != "A/A control"), key=lambda r: (r.ratio(), -r.val_acc)):
        if r.val_acc > best_acc:
            front.append(r)
            best_acc = r.val_acc
    return front


def plain_svd(results: list[Result], mode: str = "factorized") -> list[Result]:
    """One rank fraction for every layer, as is; largest fraction first."""
    rows = [r for r in find(results, rule="uniform", mode=mode) if _untrained(r)]
    return sorted(rows, key=lambda r: -r.settings["rank_fraction"])


def budget_pairs(results: list[Result]) -> list[tuple[int, Result, Result]]:
    """(budget, data-aware, plain) for each MLP MAC budget measured both ways on the dense trunk."""
    plain_trunk = [r for r in find(results, rule="budget", pool_fold=None, channels=None, conv_ranks=None)
                   if _untrained(r)]
    pairs = []
    for da in (r for r in plain_trunk if r.settings.get("data_aware")):
        budget = da.settings["mlp_budget"]
        plain = next((r for r in plain_trunk if not r.settings.get("data_aware")
                      and r.settings["mlp_budget"] == budget), None)
        if plain is not None:
            pairs.append((budget, da, plain))
    return sorted(pairs, key=lambda p: -p[0])


def allocation_pairs(results: list[Result]) -> list[tuple[Result, Result]]:
    """(ranks from output variance, ranks from weight spectra) at one recorded MLP budget, made
    alike in every other setting (the same fine-tune, its length and schedule)."""
    def rest(r: Result) -> dict:
        return {k: v for k, v in r.settings.items() if k not in ("ranks_from", "ranks")}
    return [(o, w) for w in find(results, ranks_from="weights") for o in find(results, ranks_from="outputs")
            if w.settings.get("mlp_budget") is not None and rest(o) == rest(w)]


def answers(results: list[Result]) -> list[str]:
    dense = dense_of(results)
    if dense is None:
        return []
    out: list[str] = []
    if aa := control_of(results):
        sizes = sorted(aa.latency_ratio, reverse=True)
        reads = ", ".join(f"{time_vs_dense(aa, b)} at batch {b:,}" for b in sizes)
        few = [b for b in sizes if math.isnan(aa.ratio_interval(b)[0])]
        off = [b for b, (lo, hi) in ((b, aa.ratio_interval(b)) for b in sizes) if not lo <= 1.0 <= hi and b not in few]
        out.append(f"**The A/A control** (a copy of the dense model, timed as if it were another method) reads "
                   f"{reads} of the dense time: "
                   + (f"**too few rounds for an interval at batch {', '.join(f'{b:,}' for b in few)}: this run's "
                      "timing noise is unknown there; time more rounds before trusting any latency difference.**"
                      if few else
                      "every interval contains 1.0, so the intervals below account for this run's noise."
                      if not off else f"**its interval excludes 1.0 at batch {', '.join(f'{b:,}' for b in off)}: "
                      "this run's timing noise there is larger than its intervals say; treat latency differences "
                      "as small as the control's distance from 1.0 as unproven.**"))
    svd = plain_svd(results)
    if svd:
        out.append("**Accuracy vs rank (plain SVD, one fraction for every layer):** "
                   + "; ".join(f"{r.method}: {100 * r.test_acc:.2f}% ({acc_change(r)})" for r in svd)
                   + f", against {100 * dense.test_acc:.2f}% dense. Most of the loss comes from the "
                   "1000-to-10 classifier, which keeps max(1, floor(10 f)) singular values: see the per-layer "
                   "rules below, which choose each layer's rank.")
    for rec in plain_svd(results, "reconstructed")[-1:]:
        verdict = faster(rec)
        if verdict == "faster":
            verdict += ", though the work is the same: look for a measurement problem"
        out.append(f"**Replacing each weight by its rank-truncated product** ({rec.method}) runs at "
                   f"{time_vs_dense(rec)} the dense time with the same {rec.total_macs / 1e6:.2f} M MACs: "
                   f"{verdict}. The product B @ A is a dense matrix of the original shape, kept in memory "
                   "beside its factors, so the same dense matmuls run; only the factorized form changes the work.")
    if svd:
        out.append("**Time vs rank in factorized space:** "
                   + "; ".join(f"{r.method}: {time_vs_dense(r)} dense time, "
                               f"{r.total_macs / 1e6:.2f} M MACs" for r in svd)
                   + f" (dense {dense.total_macs / 1e6:.2f} M). Time falls more slowly than the MACs: the "
                   "convolutions' MACs and the elementwise work stay, and two thin matmuls run below the "
                   "machine's peak rate.")
    for energy in find(results, rule="energy"):
        ranks = energy.get("ranks") or {}
        kept = [k for k, v in ranks.items() if v is None]
        out.append(f"**{energy.method} keeps ranks** {ranks}: "
                   + (f"{', '.join(kept)} stay{'s' if len(kept) == 1 else ''} dense, where the rank that holds "
                      "that share of the spectrum would save no work." if kept else "every layer is factorized."))
    front = pareto_front(results)
    out.append("**Which method wins where (Pareto front on validation accuracy, batch 10,000, fastest first; "
               "test accuracy reported):** "
               + "; ".join(f"{r.method} at {time_vs_dense(r)} dense time, validation {100 * r.val_acc:.2f}%, "
                           f"test {100 * r.test_acc:.2f}% ({acc_change(r)})" for r in front) + ".")
    same_work = [(f"{plain.method} vs {da.method}", plain, da) for _, da, plain in budget_pairs(results)]
    same_work += [(f"{r.method} vs dense", r, dense) for r in plain_svd(results, "reconstructed")]
    if same_work:
        out.append("**Rows doing the same work** (same shapes and MACs) should time alike: " + "; ".join(
            f"{name}: {a.ratio():.3f}x and {b.ratio():.3f}x ({100 * abs(a.ratio() / b.ratio() - 1):.1f}% apart)"
            for name, a, b in same_work) + ".")
    if pairs := budget_pairs(results):
        out.append("**Data-aware vs plain factors at the same ranks:** " + "; ".join(
            f"{b / 1e6:g}M MAC budget: validation {100 * da.val_acc:.2f}% vs {100 * plain.val_acc:.2f}%"
            for b, da, plain in pairs)
            + ". Data-aware factors always keep each layer's outputs on the calibration images better "
              "(tests/test_data_aware.py); that is not the same objective as the test accuracy.")
    if ft := [r for r in results if r.get("val_acc_before_finetune") is not None]:
        out.append("**Recovery fine-tuning (validation accuracy before -> after):** " + "; ".join(
            f"{r.method}: {100 * r.get('val_acc_before_finetune'):.2f}% -> {100 * r.val_acc:.2f}%" for r in ft) + ".")
    for fold in find(results, pool_fold=True, mlp_budget=None)[:1]:
        trunk = lambda r: (r.total_macs - r.mlp_macs) / 1e6
        before = fold.get("val_acc_before_finetune")
        out.append("**Folding each average pool into the convolution before it** "
                   f"(torch_impl/compare/pool_fold.py; trunk {trunk(dense):.2f} M -> {trunk(fold):.2f} M MACs), "
                   f"MLP untouched: {time_vs_dense(fold)} the dense time, "
                   + (f"validation {100 * before:.2f}% before and {100 * fold.val_acc:.2f}% after a distilled "
                      "fine-tune; " if before is not None else "")
                   + f"test {100 * fold.test_acc:.2f}% ({acc_change(fold)}). "
                   "The work at 32 x 32 resolution, which no factorization of the weights removes, is gone.")
    if alloc := allocation_pairs(results):
        out.append("**Where a MAC budget goes:** " + "; ".join(
            f"{o.method}: ranks from the layers' output variance {o.get('ranks')} give validation "
            f"{100 * o.val_acc:.2f}%, ranks from the weights' spectra {w.get('ranks')} "
            f"{100 * w.val_acc:.2f}% ({o.mlp_macs / 1e6:.2f} vs {w.mlp_macs / 1e6:.2f} M MLP MACs)"
            for o, w in alloc) + ". The output variance is what data-aware factors keep, and a trained "
            "layer's outputs span fewer directions than its weights; "
            + ("it spent the budget better here (on validation)." if all(o.val_acc > w.val_acc for o, w in alloc)
               else "yet here it did not always spend the budget better (on validation)."))
    out += recovery_answers(results)
    for pr in (r for r in results if r.settings.get("pruned")):
        out.append(f"**Magnitude pruning** ({pr.method}) zeroes {100 * (pr.get('linear_zero_share') or 0):.0f}% "
                   f"of the linear weights but runs at {time_vs_dense(pr)} the dense time: dense "
                   "kernels do not skip zeros.")
    return out


def recovery_answers(results: list[Result]) -> list[str]:
    """Longer cosine-rate distillation against the recipe's constant rate at the same budget, and
    the nested-rank model's truncations beside the separately distilled models."""
    out = []
    folded = [r for r in find(results, pool_fold=True, ranks_from="outputs") if r.settings.get("mlp_budget")]
    pairs = [(c, k) for c in folded if c.settings.get("finetune_schedule") == "cosine"
             for k in folded if k.settings.get("finetune_schedule") != "cosine"
             and k.settings["mlp_budget"] == c.settings["mlp_budget"]
             and k.settings.get("conv_ranks") == c.settings.get("conv_ranks")]
    if pairs:
        out.append("**Longer recovery with a decaying rate** (the recipe's constant Adam 1e-3 is for training the "
                   "base network, not for recovering a compressed one): " + "; ".join(
                       f"{c.settings['mlp_budget'] / 1e6:g}M MLP: {k.settings.get('finetune_steps')} steps at a "
                       f"constant rate validation {100 * k.val_acc:.2f}%, {c.settings.get('finetune_steps')} "
                       f"cosine {100 * c.val_acc:.2f}% (test {acc_change(c)})" for c, k in pairs) + ".")
    for lat in find(results, rule="latency"):
        twin = next((r for r in same_recipe_by_macs(folded, lat)), None)
        out.append(f"**Ranks spent by measured time** ({lat.method}): ranks {lat.get('ranks')} where the MAC rule "
                   f"chose {lat.get('mac_rule_ranks')} for the same predicted {lat.get('latency_budget_us', 0):.1f} us "
                   f"per example: {lat.mlp_macs / 1e6:.2f} M MLP MACs, {time_vs_dense(lat)} dense time, validation "
                   f"{100 * lat.val_acc:.2f}%"
                   + (f"; the MAC rule's model ({twin.method}): {twin.mlp_macs / 1e6:.2f} M, "
                      f"{time_vs_dense(twin)}, validation {100 * twin.val_acc:.2f}%" if twin else "") + ".")
    nested = sorted((r for r in results if r.settings.get("nested_fraction")),
                    key=lambda r: -r.settings["nested_fraction"])
    if nested:
        out.append("**One nested-rank model, truncated after training** (no training per rank): " + "; ".join(
            f"ranks x{r.settings['nested_fraction']:g}: {r.mlp_macs / 1e6:.2f} M MLP MACs, "
            f"{time_vs_dense(r)} dense time, validation {100 * r.val_acc:.2f}%, test {acc_change(r)}" for r in nested)
            + (". Beside it, distilled one budget at a time: " + "; ".join(
                f"{r.method}: {r.mlp_macs / 1e6:.2f} M MLP MACs, validation {100 * r.val_acc:.2f}%"
                for r in folded if not r.settings.get("conv_ranks")) if folded else "") + ".")
    out.extend(scratch_answers(results))
    return out


def scratch_answers(results: list[Result]) -> list[str]:
    """Each network trained from a random init beside the truncated models of its shapes."""
    out = []
    for s in find(results, init="random"):
        twins = [r for r in find(results, rule="budget", mlp_budget=s.settings["mlp_budget"],
                                 pool_fold=s.settings.get("pool_fold"), data_aware=True, conv_ranks=None,
                                 channels=None, init=None, nested_fraction=None)
                 if r.get("ranks") == s.get("ranks") and not r.settings.get("int8")]
        out.append(f"**Low-rank from the start** ({s.method}): the truncated model's shapes ({s.mlp_macs / 1e6:.2f} M "
                   f"MLP MACs, {time_vs_dense(s)} dense time) trained from a random init with the recipe for "
                   f"{s.settings.get('finetune_steps')} steps: validation {100 * s.val_acc:.2f}%, test {acc_change(s)}"
                   + ("; truncated from the dense model instead: " + "; ".join(
                       f"{t.method} validation {100 * t.val_acc:.2f}%, test {acc_change(t)}" for t in twins)
                      if twins else "; no truncated model of these shapes in this run") + ".")
    return out


def same_recipe_by_macs(folded: list[Result], lat: Result) -> list[Result]:
    """The MAC-budget rows made like ``lat`` (same budget, fine-tune and schedule), ranks aside."""
    same = ("finetune_steps", "finetune_schedule", "distilled", "conv_ranks")
    return [r for r in folded if r.settings.get("mlp_budget") == lat.settings.get("latency_of_mlp_budget")
            and all(r.settings.get(k) == lat.settings.get(k) for k in same)]
