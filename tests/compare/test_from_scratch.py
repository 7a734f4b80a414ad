"""Low-rank from the start: the truncated model's shapes, drawn afresh, trained with the recipe."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.conftest import TinyNet, write_image_folder
from torch_impl.compare.from_scratch import random_low_rank, train_from_scratch
from torch_impl.data import CIFAR10DataModule
from torch_impl.lowrank import LowRankLinear
from torch_impl.model import SMALL_WIDTHS, build_model

# Haiku's truncated normal (+-2 std) has std 0.880 of its scale; a 3000x400 factor's sample
# std is within 0.1% of that, so 2% is loose for the big factors and still catches a wrong fan-in
# (3072 vs 400 would be 2.8x off).
STD_RTOL = 0.02
TRUNC_STD = 0.8796  # std of a standard normal truncated to [-2, 2]
EMA_SHARE_BOUND = 0.01  # 3 EMA steps of 0.001 move the kept weights ~0.3% of the live weights' way


def test_the_shapes_of_the_ranks_drawn_with_haikus_init() -> None:
    dense = build_model(0, widths=SMALL_WIDTHS)
    ranks = {"classifier.0": 48, "classifier.2": 32, "classifier.8": None}
    model = random_low_rank(dense, ranks)
    first, second = model.get_submodule("classifier.0"), model.get_submodule("classifier.2")
    assert isinstance(first, LowRankLinear) and (first.A.shape, first.B.shape) == ((48, 3072), (96, 48))
    assert isinstance(second, LowRankLinear) and second.rank == 32
    assert type(model.get_submodule("classifier.8")) is nn.Linear  # None: kept dense, drawn afresh
    for t, fan_in in ((first.A, 3072), (first.B, 48), (second.B, 32)):
        assert float(t.detach().std()) == pytest.approx(TRUNC_STD / math.sqrt(fan_in), rel=STD_RTOL)
        assert float(t.detach().abs().max()) <= 2 / math.sqrt(fan_in) + 1e-7  # truncated at two std
    assert float(first.bias.abs().max()) == 0.0
    # nothing of the trained template is kept, and the template is untouched
    assert not torch.equal(model.features[0].weight, dense.features[0].weight)
    assert torch.equal(dense.features[0].weight, build_model(0, widths=SMALL_WIDTHS).features[0].weight)
    again = random_low_rank(dense, ranks)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    other = random_low_rank(dense, ranks, seed=7)
    assert not torch.equal(other.get_submodule("classifier.0").A, first.A)
    with torch.inference_mode():
        assert model(torch.zeros(2, 32, 32, 3, dtype=torch.uint8)).shape == (2, 10)


def test_only_linears_are_factorized() -> None:
    with pytest.raises(ValueError, match="'features.0' is a Conv2d, not an nn.Linear"):
        random_low_rank(build_model(0, widths=SMALL_WIDTHS), {"features.0": 4})


def test_the_recipes_ema_is_what_is_kept(tmp_path) -> None:
    """Three steps: the kept weights have moved a fraction of a percent of the live weights' way
    (the EMA at step 0.001 from the init), not all of it."""
    root = write_image_folder(tmp_path / "cifar", n_train=4, n_test=1)
    dm = CIFAR10DataModule(str(root), str(tmp_path / "cache"), batch_size=8, val_fraction=0.0)
    start = random_low_rank(TinyNet(), {"fc": 4})
    init = {k: v.clone() for k, v in start.state_dict().items()}
    kept, info = train_from_scratch(start, dm, steps=3, accelerator="cpu")
    live = random_low_rank(TinyNet(), {"fc": 4})
    from torch_impl.compare.finetune import finetune
    live, _ = finetune(live, dm, 3, accelerator="cpu", averaged_share=None)  # the same steps, live weights
    moved = sum(float((kept.state_dict()[k] - v).norm()) for k, v in init.items())
    live_moved = sum(float((live.state_dict()[k] - v).norm()) for k, v in init.items())
    assert live_moved > 0 and moved <= EMA_SHARE_BOUND * live_moved
    assert info["finetune_steps"] == 3 and info["weights_kept"].startswith("EMA")
