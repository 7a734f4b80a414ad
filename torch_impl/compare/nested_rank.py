"""Nested-rank training: one fine-tune after which every rank prefix is a usable model.

Each training step draws one fraction q and runs every ``LowRankLinear`` on the first
``prefix_rank(rank, q)`` of its directions (nested dropout, Rippel et al. 2014, applied to
SVD factors, which start ordered by singular value). The leading directions thus learn to
work without the rest, and ``truncate(model, q)`` afterwards keeps those prefixes as smaller
layers: the whole accuracy-vs-rank curve comes from one checkpoint, and the rank can be
chosen at deployment time from a latency budget. A share of the steps trains the full rank
(``FULL_SHARE``), so the largest model is not only ever trained as a prefix of itself.

Shapes (one layer of rank r, prefix k = max(1, ceil(q * r))):
    A [r, in] -> A[:k]     [k, in]
    B [out, r] -> B[:, :k] [out, k]
"""

from __future__ import annotations

import copy
import math
from typing import Any

import lightning as L
import torch
from torch import nn

from torch_impl.lowrank import LowRankLinear

MIN_FRACTION = 0.25  # the smallest prefix trained: the curve below it is extrapolation
FULL_SHARE = 0.25  # share of steps that run every direction


def prefix_rank(rank: int, fraction: float) -> int:
    """The directions kept of a rank-``rank`` layer at ``fraction``: ``max(1, ceil(fraction * rank))``."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"a rank fraction must be in (0, 1], got {fraction!r}")
    return max(1, math.ceil(fraction * rank - 1e-9))  # 0.5 * 6 = 3.0000000001 keeps 3


def low_rank_layers(model: nn.Module) -> dict[str, LowRankLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LowRankLinear)}


def set_prefix(model: nn.Module, fraction: float | None) -> None:
    """Run every ``LowRankLinear`` of ``model`` on its prefix at ``fraction`` (None: all directions)."""
    for m in low_rank_layers(model).values():
        m.active_rank = None if fraction is None or fraction >= 1.0 else prefix_rank(m.rank, fraction)


@torch.no_grad()
def truncate(model: nn.Module, fraction: float) -> nn.Module:
    """A copy of ``model`` whose every ``LowRankLinear`` keeps the first directions at ``fraction``:
    the prefix model, as its own smaller layers (the original is not touched)."""
    layers = low_rank_layers(model)
    if not layers:
        raise ValueError("truncate needs a model with LowRankLinear layers; this one has none")
    out = copy.deepcopy(model)
    set_prefix(out, None)
    for name, m in layers.items():
        k = prefix_rank(m.rank, fraction)
        new = LowRankLinear(m.in_features, m.out_features, k, bias=m.bias is not None, mode=m.mode)
        new.A.copy_(m.A[:k])
        new.B.copy_(m.B[:, :k])
        if m.bias is not None:
            new.bias.copy_(m.bias)
        new = new.to(m.A.device, m.A.dtype)
        if not name:  # the model is the layer itself
            return new
        out.set_submodule(name, new)
    return out


class NestedRanks(L.Callback):
    """Draws each training step's prefix fraction (seeded) and resets to the full rank after it:
    q = 1 with probability ``full_share``, else uniform in [``min_fraction``, 1)."""

    def __init__(self, min_fraction: float = MIN_FRACTION, full_share: float = FULL_SHARE, seed: int = 0) -> None:
        if not 0.0 < min_fraction < 1.0 or not 0.0 <= full_share <= 1.0:
            raise ValueError(f"nested ranks need min_fraction in (0, 1) and full_share in [0, 1], "
                             f"got {min_fraction}, {full_share}")
        self.min_fraction, self.full_share = min_fraction, full_share
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn: list[float] = []  # every step's fraction, for the record and the tests

    def draw(self) -> float:
        u, v = torch.rand(2, generator=self.generator).tolist()
        return 1.0 if u < self.full_share else self.min_fraction + (1.0 - self.min_fraction) * v

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        q = self.draw()
        self.drawn.append(q)
        set_prefix(pl_module, q)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        set_prefix(pl_module, None)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        set_prefix(pl_module, None)
