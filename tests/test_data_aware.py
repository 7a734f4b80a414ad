"""Data-aware factors beat plain SVD on their calibration data; low-rank convolutions are exact at full rank."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import learnable_images
from torch_impl.data_aware import data_aware_compress, output_spectra, output_stats
from torch_impl.factorize import compress_model
from torch_impl.lowrank_conv import LowRankConv2d, compress_convs, conv_break_even_rank
from torch_impl.model import CONV_LAYERS, LINEAR_LAYERS, SMALL_WIDTHS, build_model

# Measured on an Intel Xeon (largest difference; margin = how far it could grow before failing):
FULL_RANK_ATOL = 1e-4  # fp32 outputs through a float64 factorization cast back; 1.8e-6 (margin 108)
SPECTRUM_RTOL = 1e-3  # an fp32 forward's squared error against float64 eigenvalues; 5.2e-9 (4.8e4)
STATS_TOL = 1e-6  # float64 mean and covariance against torch's own; 6.4e-17 (1e10)


@pytest.fixture(scope="module")
def net_and_calib() -> tuple[nn.Module, torch.Tensor]:
    """A dense Net given a few training-like steps' worth of structure: random init is enough for
    the inequality (it holds for any weights), and real images keep the inputs realistic."""
    images, _ = learnable_images(12, seed=3)  # 120 images
    return build_model(0, widths=SMALL_WIDTHS).eval(), torch.from_numpy(images)


def layer_output(model: nn.Module, name: str, images: torch.Tensor) -> torch.Tensor:
    got = {}
    handle = model.get_submodule(name).register_forward_hook(lambda m, i, o: got.setdefault("y", o))
    with torch.inference_mode():
        model(images)
    handle.remove()
    return got["y"]


@pytest.mark.parametrize("name,rank", [(LINEAR_LAYERS[3], 16), (LINEAR_LAYERS[4], 4), (CONV_LAYERS[1], 8)])
def test_data_aware_beats_plain_svd_on_its_calibration_data(net_and_calib, name: str, rank: int) -> None:
    net, calib = net_and_calib
    target = layer_output(net, name, calib)
    aware = layer_output(data_aware_compress(net, {name: rank}, calib), name, calib)
    if name.startswith("features"):
        plain_model = compress_convs(net, {name: rank})
    else:
        plain_model, _ = compress_model(net, ranks={name: rank})
    plain = layer_output(plain_model, name, calib)
    err_aware, err_plain = (target - aware).norm(), (target - plain).norm()
    assert err_aware < err_plain, f"data-aware {err_aware:.4g} vs plain SVD {err_plain:.4g}"


def test_data_aware_at_full_rank_reproduces_the_layer(net_and_calib) -> None:
    net, calib = net_and_calib
    full = data_aware_compress(net, {LINEAR_LAYERS[4]: 10, CONV_LAYERS[1]: 48}, calib)
    with torch.inference_mode():
        torch.testing.assert_close(full(calib), net(calib), atol=FULL_RANK_ATOL, rtol=FULL_RANK_ATOL)


def test_output_stats_are_the_mean_and_covariance_of_the_outputs(net_and_calib) -> None:
    net, calib = net_and_calib
    mean, cov = output_stats(net, LINEAR_LAYERS[3], calib)
    layer = net.get_submodule(LINEAR_LAYERS[3])
    y = (layer_output(net, LINEAR_LAYERS[3], calib) - layer.bias).double()
    torch.testing.assert_close(mean, y.mean(0), atol=STATS_TOL, rtol=STATS_TOL)
    torch.testing.assert_close(cov, torch.cov(y.T, correction=0), atol=STATS_TOL, rtol=STATS_TOL)


def test_low_rank_conv_full_rank_equals_the_conv_and_keeps_shapes() -> None:
    conv = nn.Conv2d(18, 48, 5, padding=2)
    x = torch.randn(2, 18, 16, 16)
    full = LowRankConv2d.from_conv(conv, 48)
    torch.testing.assert_close(full(x), conv(x), atol=FULL_RANK_ATOL, rtol=FULL_RANK_ATOL)
    low = LowRankConv2d.from_conv(conv, 8)
    assert low(x).shape == conv(x).shape and low.rank == 8
    assert conv_break_even_rank(conv) == pytest.approx(48 * 450 / 498)


def test_bad_inputs_name_the_problem(net_and_calib) -> None:
    net, calib = net_and_calib
    with pytest.raises(ValueError, match="rank must be in"):
        LowRankConv2d.from_conv(nn.Conv2d(3, 18, 5), 19)
    with pytest.raises(ValueError, match="not an nn.Conv2d"):
        compress_convs(net, {LINEAR_LAYERS[0]: 4})
    with pytest.raises(ValueError, match="not a layer of the model"):
        data_aware_compress(net, {"classifier.99": 4}, calib)
    with pytest.raises(ValueError, match="takes nn.Linear or nn.Conv2d"):
        data_aware_compress(net, {"features.2": 4}, calib)


@pytest.mark.slow
@pytest.mark.parametrize("name,rank", [(LINEAR_LAYERS[3], 16), (LINEAR_LAYERS[1], 40)])
def test_output_spectra_measure_what_data_aware_factors_lose(net_and_calib, name: str, rank: int) -> None:
    """The budget rule reads ``output_spectra`` as "what a rank keeps": the data-aware layer's mean
    squared output error on its calibration data is the output variance outside the top ``rank``
    components, i.e. ``(1 - energy(rank))`` times the total."""
    model, images = net_and_calib
    spec = {s.name: s for s in output_spectra(model, images)}[name]
    _, cov = output_stats(model, name, images)
    assert spec.max_rank == len(spec.s) and bool((spec.s[:-1] >= spec.s[1:]).all())
    err = layer_output(data_aware_compress(model, {name: rank}, images), name, images) - layer_output(
        model, name, images)
    torch.testing.assert_close(err.double().pow(2).sum(1).mean(), (1 - spec.energy(rank)) * torch.trace(cov),
                               rtol=SPECTRUM_RTOL, atol=0.0)
