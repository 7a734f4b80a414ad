"""Same weights, same logits: dense and low-rank, torch vs the JAX/Haiku reference."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

from jax_ref.lowrank import factorized_params, ranks_for, reconstructed_params
from jax_ref.model import dense_net, init_params, low_rank_net
from torch_impl.factorize import compress_model
from torch_impl.inference import predict
from torch_impl.model import HIDDEN_WIDTHS, POOLINGS, SMALL_WIDTHS, build_model
from torch_impl.parity.haiku_convert import haiku_to_torch, torch_to_haiku

# The same weights on both sides, one forward pass (no chaotic growth). Measured on an Intel
# Xeon: logits differ by 4.0e-5 at most (margin 10 against atol + rtol * |logit|).
LOGITS_ATOL = 2e-4  # fp32 convolutions and 3072-long dot products summed in different orders
LOGITS_RTOL = 1e-4
# A top-2 logit gap below this may flip between frameworks. Measured: up to 7 of 1,000 images
# have a smaller gap (factorized f=0.1, smallest 2.3e-4), and none of them changed class.
TIE_MARGIN = 1e-3
FRACTIONS = (1.0, 0.5, 0.2, 0.1)
# A test loops over its network's fractions instead of taking them as parameters: parametrizing
# the session's `pooling` fixture per test would give each case its own cache key, and retrain
# `trained_net` for every one of them.
LOW_RANK_FRACTIONS = {"spatial": FRACTIONS, "haiku": FRACTIONS}


def jax_logits(apply_fn, params, images: np.ndarray, chunk: int = 1000) -> np.ndarray:
    fn = jax.jit(apply_fn)
    return np.concatenate([np.asarray(fn(params, images[i: i + chunk])) for i in range(0, len(images), chunk)])


def torch_logits(model, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return predict(model.eval(), torch.from_numpy(images)).numpy()


def assert_logits_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(want), rtol=LOGITS_RTOL,
                               atol=LOGITS_ATOL, msg=lambda m: f"{what}: {m}")


def assert_same_classes(got: np.ndarray, want: np.ndarray, what: str) -> None:
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > TIE_MARGIN
    mismatch = (got.argmax(1) != want.argmax(1)) & clear
    assert not mismatch.any(), f"{what}: {mismatch.sum()} images with a clear margin change class"


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("names", ["auto", "canonical", "take-home"])
def test_conversion_round_trip_is_exact(pooling: str, names: str) -> None:
    net_t = build_model(3, pooling, SMALL_WIDTHS)
    back = haiku_to_torch(torch_to_haiku(net_t, names))
    assert back.pooling == pooling and back.widths == SMALL_WIDTHS
    for (k, a), b in zip(net_t.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.slow
@pytest.mark.parametrize("pooling", POOLINGS)
def test_conversion_matches_haiku_names_and_shapes(full_size_nets, pooling: str) -> None:
    """The literal network's tree is what ``hk.transform`` of the take-home's hk.Sequential
    makes: conv2_d_1.w (5, 5, 9, 48), linear.w (6144, 3000), the same names."""
    hk_params = jax.device_get(init_params(0, pooling))
    converted = torch_to_haiku(full_size_nets[pooling])
    assert list(converted) == list(hk_params)
    for m in hk_params:
        for n in hk_params[m]:
            assert converted[m][n].shape == hk_params[m][n].shape, (m, n)
    if pooling == "haiku":
        assert converted["conv2_d_1"]["w"].shape == (5, 5, 9, 48) and converted["linear"]["w"].shape == (6144, 3000)


def test_haiku_to_torch_rejects_wrong_trees() -> None:
    params = {m: dict(d) for m, d in torch_to_haiku(build_model(0, widths=SMALL_WIDTHS)).items()}
    params["fc2"]["w"] = params["fc2"]["w"][:-1]
    with pytest.raises(ValueError, match=r"fc2/w: expected shape \(96, 64\), got \(95, 64\)"):
        haiku_to_torch(params)
    with pytest.raises(ValueError, match="must have the modules .* got \\['conv2', 'fc1'"):
        haiku_to_torch({k: v for k, v in params.items() if k != "conv1"})
    params = {m: dict(d) for m, d in torch_to_haiku(build_model(0, widths=SMALL_WIDTHS)).items()}
    params["conv2"]["w"] = params["conv2"]["w"][:, :, :12]
    with pytest.raises(ValueError, match=r"match neither network: conv2 w \(5, 5, 12, 48\)"):
        haiku_to_torch(params)


@pytest.mark.parametrize("widths", [SMALL_WIDTHS, pytest.param(HIDDEN_WIDTHS, marks=pytest.mark.slow)],
                         ids=["small", "full-size"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_haiku_init_loaded_into_torch_gives_the_same_logits(pooling: str, widths: tuple[int, ...]) -> None:
    hk_params = jax.device_get(init_params(42, pooling, widths))  # the other direction: Haiku's own init
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    torch_net = haiku_to_torch(hk_params)
    assert torch_net.pooling == pooling and torch_net.widths == widths
    j = jax_logits(dense_net(pooling, widths).apply, hk_params, images)
    assert_logits_close(torch_logits(torch_net, images), j, f"haiku init, {pooling}")


@pytest.mark.slow
def test_dense_logits_and_classes_on_real_images(trained_net, real_splits, pooling: str) -> None:
    images = real_splits["test"][0][:2000]
    params = torch_to_haiku(trained_net)  # "haiku": the take-home's names, for its verbatim hk.Sequential
    t, j = torch_logits(trained_net, images), jax_logits(dense_net(pooling, trained_net.widths).apply, params, images)
    assert_logits_close(t, j, f"dense {pooling}")
    assert_same_classes(t, j, f"dense {pooling}")


@pytest.mark.slow
def test_low_rank_logits_with_the_same_factors(trained_net, real_splits, trained_svds, pooling: str) -> None:
    """Torch's SVD factors, run by Haiku's factorized network: the forward passes agree."""
    images = real_splits["test"][0][:1000]
    for fraction in LOW_RANK_FRACTIONS[pooling]:
        small, report = compress_model(trained_net, rank_fraction=fraction, svds=trained_svds[0])
        ranks = [r.rank for r in report]
        assert ranks == ranks_for(fraction, pooling, trained_net.widths)  # both sides apply the same rank rule
        j = jax_logits(low_rank_net(ranks, pooling, trained_net.widths).apply, torch_to_haiku(small), images)
        t = torch_logits(small, images)
        assert_logits_close(t, j, f"{pooling}, factorized f={fraction}")
        assert_same_classes(t, j, f"{pooling}, factorized f={fraction}")


@pytest.mark.slow
def test_low_rank_logits_from_each_frameworks_own_svd(trained_net, real_splits, trained_svds, pooling: str) -> None:
    images = real_splits["test"][0][:1000]
    dense = torch_to_haiku(trained_net)
    t_svds, j_svds = trained_svds
    widths = trained_net.widths
    for fraction in LOW_RANK_FRACTIONS[pooling]:
        ranks = ranks_for(fraction, pooling, widths)
        for mode in ("factorized", "reconstructed"):
            small, _ = compress_model(trained_net, rank_fraction=fraction, mode=mode, svds=t_svds)
            if mode == "factorized":
                j = jax_logits(low_rank_net(ranks, pooling, widths).apply, factorized_params(dense, ranks, j_svds),
                               images)
            else:
                j = jax_logits(dense_net(pooling, widths).apply, reconstructed_params(dense, ranks, j_svds), images)
            t = torch_logits(small, images)
            assert_logits_close(t, j, f"{pooling}, {mode} f={fraction}")
            assert_same_classes(t, j, f"{pooling}, {mode} f={fraction}")
