"""Synthetic comparison results: rows with chosen accuracies, ratios and settings."""

from __future__ import annotations

from torch_impl.measure.results import Result


def synthetic(method: str, family: str, acc: float, ratio: float, macs: float, mlp: float = 0.0, **settings) -> Result:
    """A synthetic row: validation accuracy ``acc``, test accuracy 1 pp below it, the ratio
    +-2% at both batch sizes, and a test difference to dense (0.69) with a +-0.5 pp interval."""
    measured = {k: settings.pop(k) for k in ("val_acc_before_finetune", "ranks", "linear_zero_share") if k in settings}
    test = acc - 0.01
    if family != "dense":
        measured.update(test_diff=test - 0.69, test_diff_lo=test - 0.695, test_diff_hi=test - 0.685,
                        test_mcnemar_p=0.5 if abs(test - 0.69) < 0.003 else 0.001)
    both = lambda v: {10_000: v, 1: v}
    return Result(method, family, test, latency_us={10_000: 100 * ratio, 1: 1000 * ratio},
                  latency_iqr_us=both(1.0), latency_ratio=both(ratio), latency_ratio_lo=both(0.98 * ratio),
                  latency_ratio_hi=both(1.02 * ratio), val_acc=acc, total_macs=int(macs), mlp_macs=int(mlp),
                  params=1, settings=settings, measured=measured)


DENSE = synthetic("dense", "dense", 0.70, 1.0, 28e6, 21.2e6)
