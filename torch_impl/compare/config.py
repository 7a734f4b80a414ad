"""``CompareConfig``: what decides a comparison's models, one object from the flags to the files.

The script builds it from its flags; ``default_recipes`` reads its budgets and step counts;
``points/config.json`` records it (with the checkpoint and the data), so a resumed run with
other settings is refused; ``compare.json`` carries it as ``config``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch_impl.compare.from_scratch import RECIPE_STEPS
from torch_impl.model import CONV_LAYERS, DEFAULT_POOLING

NESTED_FRACTIONS = (1.0, 0.5, 0.25)  # truncations of the one nested-rank model compared


@dataclass(frozen=True)
class CompareConfig:
    """Budgets are MLP multiply-accumulates per example; steps are batches of 128.

    ``finetune_steps``: recovery fine-tunes; ``distill_steps``: the distilled pool-folded recipes;
    ``long_distill_steps``: the cosine-rate distillations and the nested-rank model;
    ``mlp_budget`` / ``tight_budget`` / ``fold_budget``: the per-layer rank budgets (the last the
    tightest pool-folded one); ``conv_ranks``: ranks of the factored convolutions;
    ``nested_budget`` and ``nested_fractions``: the nested-rank model and its truncations;
    ``scratch_steps``: the low-rank models trained from a random init; ``calib_images``:
    training images for the data-aware factors; ``pooling``: the network's, which decides
    what applies; ``seed``: the recipes' own randomness (the calibration draw, fine-tunes' data
    order and init, the nested-rank draws, the from-scratch init), so a replicate on another
    dense checkpoint also draws its recipes anew; ``rank_runtime`` and ``rank_precision``: where
    the measured-latency rank rule's table is timed (the runtime and precision the models will
    run in; ``torch_impl.deploy.layer_runners``)."""

    finetune_steps: int = 400
    distill_steps: int = 1500
    long_distill_steps: int = 3000
    mlp_budget: int = 2_000_000
    tight_budget: int = 400_000
    fold_budget: int = 1_000_000
    conv_ranks: dict[str, int] = field(default_factory=lambda: {CONV_LAYERS[0]: 8, CONV_LAYERS[1]: 16})
    nested_budget: int = 4_000_000
    nested_fractions: tuple[float, ...] = NESTED_FRACTIONS
    scratch_steps: int = RECIPE_STEPS
    calib_images: int = 2048
    pooling: str = DEFAULT_POOLING
    seed: int = 0
    rank_runtime: str = "eager"
    rank_precision: str = "fp32"

    def as_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "nested_fractions": list(self.nested_fractions)}
        # the default table (fp32 eager) is the one every earlier run used: their points stay valid
        return {k: v for k, v in out.items()
                if not (k in ("rank_runtime", "rank_precision") and v == getattr(CompareConfig, k))}
