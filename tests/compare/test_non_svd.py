"""The non-SVD alternatives: magnitude and channel pruning, int8, a smaller head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torch_impl.compare.finetune import zero_fraction
from torch_impl.compare.non_svd import drop_hidden_mlp, magnitude_prune, prune_channels
from torch_impl.compare.recipes import Context
from torch_impl.factorize import compress_model, dynamic_int8, lowrank_as_linears

INT8_RTOL = 0.1  # int8 weights: logits agree to ~1-5% of their spread, not to fp32 round-off
SAME_FUNCTION_TOL = 1e-5  # one function rebuilt in other modules: measured 0 on an Intel Xeon






@pytest.mark.slow
def test_pruning_zeroes_the_share_asked_for(ctx: Context) -> None:
    pruned = magnitude_prune(ctx.dense, 0.9)
    assert zero_fraction(pruned) == pytest.approx(0.9, abs=1e-3)
    assert zero_fraction(ctx.dense) == 0.0
    with pytest.raises(ValueError, match=r"amount .* must be in \[0, 1\)"):
        magnitude_prune(ctx.dense, 1.0)


@pytest.mark.slow
def test_int8_tracks_the_float_model(ctx: Context, images: torch.Tensor) -> None:
    low, _ = compress_model(ctx.dense, rank_fraction=0.5, svds=ctx.svds)
    split = lowrank_as_linears(low)  # the same function as two nn.Linear
    with torch.inference_mode():
        ref = low(images)
        torch.testing.assert_close(split(images), ref, atol=SAME_FUNCTION_TOL, rtol=SAME_FUNCTION_TOL)
        q = dynamic_int8(low)(images)
    assert (q - ref).abs().max() <= INT8_RTOL * (ref.max() - ref.min())


@pytest.mark.slow
def test_channel_pruning_keeping_every_channel_is_the_identity(ctx: Context, images: torch.Tensor) -> None:
    same = prune_channels(ctx.dense, 18, 48)
    with torch.inference_mode():
        torch.testing.assert_close(same(images), ctx.dense(images), atol=SAME_FUNCTION_TOL, rtol=SAME_FUNCTION_TOL)
    small = prune_channels(ctx.dense, 8, 24)
    assert small.features[4].weight.shape == (24, 8, 5, 5) and small.classifier[0].in_features == 64 * 24
    assert small(images).shape == (len(images), 10)
    with pytest.raises(ValueError, match="keep_conv1 must be in"):
        prune_channels(ctx.dense, 0, 24)


@pytest.mark.slow
def test_smaller_head_has_the_right_shape(ctx: Context, images: torch.Tensor) -> None:
    small = drop_hidden_mlp(ctx.dense)
    linears = [m for m in small.classifier.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3072, 10)]
    assert small(images).shape == (len(images), 10)
