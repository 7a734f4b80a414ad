"""Pool folding: the folded convolution equals conv + average pool; the folded Net keeps its
shapes, does the stated work, and equals the original wherever its ReLUs are inactive."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torch_impl.compare.pool_fold import fold_pool_into_conv, fold_pools
from torch_impl.lowrank_conv import compress_convs
from torch_impl.measure.cost import count_macs
from torch_impl.model import SMALL_WIDTHS, FlattenHWC, build_model

# Measured on an Intel Xeon (largest difference; margin = how far it could grow before failing):
# fp32: one 6x6 sum of the same products against a 5x5 conv then a 4-term average; 1.1e-6 (margin 9)
FOLD_ATOL = 1e-5
# whole-network logits (large, as every unit is pushed active), relative with an absolute
# floor of MODEL_ATOL; 1.3e-4 absolute (margin 13)
MODEL_RTOL, MODEL_ATOL = 1e-4, 1e-3


@pytest.mark.parametrize("cin,cout,k,size", [(3, 18, 5, 32), (18, 48, 5, 16), (4, 6, 3, 10)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_conv_equals_conv_then_pool(cin: int, cout: int, k: int, size: int, channels_last: bool) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, padding=k // 2)
    x = torch.randn(3, cin, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    folded = fold_pool_into_conv(conv)
    assert folded.kernel_size == (k + 1, k + 1) and folded.stride == (2, 2)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), nn.AvgPool2d(2, 2)(conv(x)), rtol=0, atol=FOLD_ATOL)


def test_folded_net_layout_and_work() -> None:
    net = build_model(0, widths=SMALL_WIDTHS).eval()
    folded = fold_pools(net)
    assert [type(m) for m in folded.features] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, FlattenHWC]
    macs = count_macs(folded)
    assert macs["features.0"] == 18 * 16 * 16 * 3 * 36 and macs["features.2"] == 48 * 8 * 8 * 18 * 36
    assert sum(v for k, v in macs.items() if k.startswith("features")) < 0.37 * sum(
        v for k, v in count_macs(net).items() if k.startswith("features"))
    images = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8)
    with torch.inference_mode():
        assert folded(images).shape == (5, 10)
        assert folded.features(folded.normalize(images)).shape == (5, 3072)
    assert type(net.features[2]) is nn.AvgPool2d  # the original is untouched


def test_folded_net_equals_the_original_where_relus_are_inactive() -> None:
    """With every conv pre-activation positive, ReLU is the identity on the trunk, so swapping
    it with the pool changes nothing and the folded network must give the same logits."""
    net = build_model(1, widths=SMALL_WIDTHS).eval()
    with torch.no_grad():
        net.features[0].bias.fill_(50.0)  # pre-activations are O(1) + 50 > 0 on any normalized image
        net.features[4].weight.abs_()  # positive weights on positive inputs (zeros at the border)
        net.features[4].bias.fill_(1.0)
    images = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(fold_pools(net)(images), net(images), rtol=MODEL_RTOL, atol=MODEL_ATOL)


def test_fold_pools_rejects_what_it_cannot_fold() -> None:
    net = build_model(0, widths=SMALL_WIDTHS)
    with pytest.raises(ValueError, match="`features` nn.Sequential"):
        fold_pools(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="no conv -> ReLU -> AvgPool2d"):
        fold_pools(fold_pools(net))
    with pytest.raises(ValueError, match="fold the pools before factorizing"):
        fold_pools(compress_convs(net, {"features.0": 4, "features.4": 8}))
    strided = build_model(0, widths=SMALL_WIDTHS)
    strided.features[0].stride = (2, 2)
    with pytest.raises(ValueError, match="stride-1, SAME-padded"):
        fold_pools(strided)
