"""The dense network: shapes, parameter count, normalization, flatten order, init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from torch_impl.model import CIFAR10_MEAN, CIFAR10_STD, SMALL_WIDTHS, FlattenHWC, Net, Normalize, build_model

# Rounding of (x/255 - mean)/std against Python's float64, over all 256 pixel values: measured
# 3.5e-7 in float32 (margin 2.8; elementwise IEEE arithmetic, the same on every CPU) and 0 in
# float64. A float64 model that kept float32-rounded constants would be off by ~3e-8.
NORM_ATOL = {torch.float32: 1e-6, torch.float64: 1e-14}
# Sample std of >= 1350 truncated-normal draws; the draws are fixed by the seed, so this
# depends on no CPU: measured 1.6% off (margin 3).
INIT_STD_RTOL = 0.05
TRUNC_STD_FACTOR = 0.8796256610342398  # std of N(0,1) truncated to [-2, 2]

EXPECTED_SHAPES = {
    "features.0.weight": (18, 3, 5, 5), "features.0.bias": (18,),
    "features.4.weight": (48, 18, 5, 5), "features.4.bias": (48,),
    "classifier.0.weight": (3000, 3072), "classifier.0.bias": (3000,),
    "classifier.2.weight": (2000, 3000), "classifier.2.bias": (2000,),
    "classifier.4.weight": (2000, 2000), "classifier.4.bias": (2000,),
    "classifier.6.weight": (1000, 2000), "classifier.6.bias": (1000,),
    "classifier.8.weight": (10, 1000), "classifier.8.bias": (10,),
}


@pytest.fixture(scope="module")
def net(full_size_nets) -> Net:
    return full_size_nets["spatial"]


@pytest.mark.slow  # the full-size network
def test_parameter_count_and_shapes(net: Net) -> None:
    assert sum(p.numel() for p in net.parameters()) == 21_257_026
    assert {k: tuple(v.shape) for k, v in net.named_parameters()} == EXPECTED_SHAPES


def test_forward_shapes_and_pooling() -> None:
    net = build_model(0, widths=SMALL_WIDTHS)  # the trunk and its flatten are the full-size network's
    x = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    assert net.features(net.normalize(x)).shape == (3, 3072)
    assert net(x).shape == (3, 10)
    kinds = [type(m) for m in net.features]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.AvgPool2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.AvgPool2d, FlattenHWC]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalization_matches_hand_computation(dtype: torch.dtype) -> None:
    pixels = [0, 1, 127, 128, 200, 255]  # 128..255 are where an int8 cast would wrap
    img = torch.tensor(pixels * 3, dtype=torch.uint8)
    x = torch.zeros(1, 32, 32, 3, dtype=torch.uint8)
    x[0, 0, :6, :] = img.reshape(6, 3)
    out = Normalize().to(dtype)(x)  # NCHW view; .to rebuilds the constants in the new dtype
    assert out.dtype == dtype
    for w in range(6):
        for c in range(3):
            v = int(x[0, 0, w, c])
            expected = (v / 255.0 - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
            assert abs(float(out[0, c, 0, w]) - expected) < NORM_ATOL[dtype], (w, c, v)


def test_normalization_rejects_nchw_input() -> None:
    with pytest.raises(ValueError, match="NHWC"):
        Normalize()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


def test_flatten_is_h_w_c_order() -> None:
    x = torch.arange(2 * 4 * 3 * 5, dtype=torch.float32).reshape(2, 4, 3, 5)  # N, C, H, W
    flat = FlattenHWC()(x)
    n, c, h, w = 1, 2, 1, 3
    assert flat[n, (h * 5 + w) * 4 + c] == x[n, c, h, w]
    torch.testing.assert_close(flat, x.permute(0, 2, 3, 1).reshape(2, -1))


def test_conv_padding_is_same() -> None:
    net = build_model(0, widths=SMALL_WIDTHS)
    conv = net.features[0]
    assert conv.padding == (2, 2) and conv.stride == (1, 1)
    y = conv(torch.zeros(1, 3, 32, 32))
    assert y.shape[-2:] == (32, 32)


@pytest.mark.slow  # the full-size network
def test_haiku_init_statistics(net: Net) -> None:
    for name, p in net.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
            continue
        fan_in = p[0].numel()
        std = 1.0 / math.sqrt(fan_in)
        w = p.detach().double()
        assert float(w.abs().max()) <= 2 * std + 1e-7, name  # truncated at +-2 std
        assert abs(float(w.mean())) < 5 * std * TRUNC_STD_FACTOR / math.sqrt(w.numel()), name
        np.testing.assert_allclose(float(w.std()), std * TRUNC_STD_FACTOR, rtol=INIT_STD_RTOL, err_msg=name)


def test_init_depends_only_on_seed() -> None:
    a, b, c = (build_model(seed, widths=SMALL_WIDTHS) for seed in (42, 42, 7))
    torch.testing.assert_close(a.classifier[0].weight, b.classifier[0].weight, rtol=0, atol=0)
    assert not torch.equal(a.classifier[0].weight, c.classifier[0].weight)
