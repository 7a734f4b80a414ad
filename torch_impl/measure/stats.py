"""Intervals and tests for the numbers the sweep and the comparison report.

- Latency ratios: per-round ratios of a model's time to the reference's, from interleaved
  rounds (``torch_impl.measure.latency``); the estimate is the 20%-trimmed mean of their logarithms,
  exponentiated (a geometric mean that ignores the fifth of rounds at either end: single
  calls here vary by ~7% and now and then by 30% when the machine is disturbed, which a plain
  mean follows and a median needs ~1.5x more rounds to average away). Its interval is the
  Tukey-McLaughlin trimmed-t interval (winsorized variance, ``n - 2g - 1`` degrees of freedom),
  computed at the ``RATIO_LEVEL`` level and reported as a 95% interval: timing stops as soon as
  the interval is narrow enough, which selects runs whose spread happened to look small, and at
  that level the interval still covers the true ratio at least 95% of the time when stopped that
  way (``tests/measure/test_coverage.py`` simulates it at 3, 5, 16, 34 rounds and with stopping;
  a percentile bootstrap over rounds covered 50-90% below 16 rounds). Below
  ``MIN_INTERVAL_ROUNDS`` rounds there is no interval (NaN: "too few rounds").
- Accuracy differences: two models scored on the same images are paired; the difference's
  95% interval is a paired bootstrap over images, and McNemar's exact test asks whether the
  images one model alone gets right outnumber those the other alone gets right by more than
  chance (``scipy.stats.binomtest`` on the discordant pairs).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from scipy.stats import t as student_t

SIGNIFICANCE = 0.05  # McNemar p below this: an accuracy differs from dense's

N_BOOT = 2000
CONFIDENCE = 0.95
TRIM = 0.2  # share of rounds cut at each end before averaging log ratios
RATIO_LEVEL = 0.99  # computed at this level, a latency interval covers >= 95% under the stopping rule
MIN_INTERVAL_ROUNDS = 3  # fewer rounds give no latency interval


def _percentiles(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def ratio_interval(model_s: np.ndarray | list[float],
                   reference_s: np.ndarray | list[float]) -> tuple[float, float, float]:
    """(trimmed geometric mean of per-round ratios, low, high of its 95% interval); round i timed
    both ``model_s[i]`` and ``reference_s[i]``. The interval is NaN below ``MIN_INTERVAL_ROUNDS``."""
    logs = np.log(np.asarray(model_s, dtype=float) / np.asarray(reference_s, dtype=float))
    if logs.ndim != 1 or len(logs) == 0:
        raise ValueError(f"need one time per round for both models, got shapes {np.shape(model_s)} "
                         f"and {np.shape(reference_s)}")
    n = len(logs)
    g = int(np.floor(TRIM * n))  # rounds cut at each end, as scipy.stats.trim_mean cuts them
    w = np.sort(logs)
    centre = float(w[g:n - g].mean())  # trim_mean's value; computed here because timing loops
    if n < MIN_INTERVAL_ROUNDS:  # call this every round and scipy's wrapper costs 1 ms a call
        return float(np.exp(centre)), float("nan"), float("nan")
    # scipy has the trimmed mean but not its interval; Tukey-McLaughlin: winsorize g per end
    w[:g], w[n - g:] = w[g], w[n - g - 1]
    se = float(np.std(w, ddof=1)) / ((1 - 2 * g / n) * np.sqrt(n))
    half = _t_quantile(n - 2 * g - 1) * se
    return float(np.exp(centre)), float(np.exp(centre - half)), float(np.exp(centre + half))


@functools.cache
def _t_quantile(df: int) -> float:
    return float(student_t.ppf(0.5 + RATIO_LEVEL / 2, df))


def relative_halfwidth(estimate: float, lo: float, hi: float) -> float:
    """Half the interval's width as a share of the estimate (inf while there is no interval)."""
    return float("inf") if np.isnan(lo) or np.isnan(hi) else (hi - lo) / 2 / estimate


@dataclass
class AccuracyDiff:
    """``model`` minus ``reference`` accuracy on the same images, with its interval and test."""

    diff: float  # in [-1, 1]
    lo: float
    hi: float
    only_reference: int  # images only the reference classifies correctly
    only_model: int  # images only the model classifies correctly
    p_value: float  # McNemar's exact test, two-sided

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_diff": self.diff, f"{prefix}_diff_lo": self.lo, f"{prefix}_diff_hi": self.hi,
                f"{prefix}_mcnemar_p": self.p_value, f"{prefix}_only_dense": self.only_reference,
                f"{prefix}_only_model": self.only_model}


def accuracy_diff(model_correct: np.ndarray, reference_correct: np.ndarray, n_boot: int = N_BOOT,
                  seed: int = 0) -> AccuracyDiff:
    """Paired comparison of two models' per-image correctness (boolean arrays, same images).

    Each image contributes -1, 0 or +1 to the difference; resampling images with replacement
    is the same as drawing how many of each from a multinomial, which is what is drawn here
    (exactly the paired bootstrap, without materializing n_boot x n indices).
    """
    m, r = np.asarray(model_correct, dtype=bool), np.asarray(reference_correct, dtype=bool)
    if m.shape != r.shape or m.ndim != 1 or m.size == 0:
        raise ValueError(f"need per-image correctness of both models on the same images, got shapes "
                         f"{m.shape} and {r.shape}")
    n = m.size
    only_m, only_r = int((m & ~r).sum()), int((r & ~m).sum())
    probs = np.array([only_r, n - only_m - only_r, only_m]) / n
    counts = np.random.default_rng(seed).multinomial(n, probs, size=n_boot)
    diffs = (counts[:, 2] - counts[:, 0]) / n
    p = binomtest(min(only_m, only_r), only_m + only_r, 0.5).pvalue if only_m + only_r else 1.0
    return AccuracyDiff((only_m - only_r) / n, *_percentiles(diffs), only_r, only_m, float(p))


def fmt_interval(value: float, lo: float, hi: float, spec: str = ".3f", unit: str = "") -> str:
    """``0.512x [0.498, 0.526]``: a value, its unit, and its interval, the one format of every
    table and report line (``spec`` as in ``format``: ``+.2f`` for differences in pp); a missing
    interval (NaN: below ``MIN_INTERVAL_ROUNDS``) reads ``[too few rounds]``."""
    if np.isnan(lo) or np.isnan(hi):
        return f"{value:{spec}}{unit} [too few rounds]"
    return f"{value:{spec}}{unit} [{lo:{spec}}, {hi:{spec}}]"
