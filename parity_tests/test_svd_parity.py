"""SVD parity that does not depend on singular-vector signs: values, reconstructions, outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jax_ref.lowrank import layer_svds, rank_approximated_weight, rank_for
from torch_impl.haiku_convert import torch_to_haiku
from torch_impl.lowrank import LowRankLinear, linear_svd, rank_from_fraction
from torch_impl.model import build_model

SVALS_RTOL = 1e-4  # torch works in float64, JAX in float32
RECON_ATOL = 1e-5  # weights are O(1e-2)
OUTPUT_ATOL = 1e-4
FRACTIONS = (1.0, 0.7, 0.5, 0.2, 0.1)


@pytest.fixture(scope="module")
def layers():
    """The five linear layers, their Haiku parameters, and each side's SVDs (computed once)."""
    net = build_model(42)
    linears = [m for m in net.classifier if isinstance(m, torch.nn.Linear)]
    params = torch_to_haiku(net)
    return linears, params, [linear_svd(m) for m in linears], layer_svds(params)


def test_rank_rules_agree() -> None:
    for f in np.arange(1.0, 0.0, -0.05):
        for shape in ((3072, 3000), (3000, 2000), (2000, 1000), (1000, 10)):
            assert rank_from_fraction(float(f), *shape) == rank_for(float(f), *shape)


def test_singular_values_agree(layers) -> None:
    linears, _, t_svds, j_svds = layers
    for i, lin in enumerate(linears):
        s_t = t_svds[i][1].numpy()
        s_j = np.asarray(j_svds[f"fc{i + 1}"][1])
        np.testing.assert_allclose(s_t, s_j, rtol=SVALS_RTOL, atol=1e-6, err_msg=f"fc{i + 1}")


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_reconstructions_and_outputs_agree(layers, fraction: float) -> None:
    linears, params, t_svds, j_svds = layers
    x = np.random.default_rng(0).normal(size=(8, 3072)).astype(np.float32)
    for i, lin in enumerate(linears):
        low = LowRankLinear.from_linear(lin, rank_fraction=fraction, svd=t_svds[i])
        u, v = rank_approximated_weight(params[f"fc{i + 1}"]["w"], low.rank, j_svds[f"fc{i + 1}"])
        recon_j = np.asarray(u @ v)  # [in, out]
        recon_t = low.reconstructed_weight().detach().numpy().T
        np.testing.assert_allclose(recon_t, recon_j, atol=RECON_ATOL, err_msg=f"fc{i + 1} f={fraction}")
        xi = x[:, : lin.in_features]
        y_t = low(torch.from_numpy(xi)).detach().numpy()
        y_j = np.asarray(xi @ u @ v + params[f"fc{i + 1}"]["b"])
        np.testing.assert_allclose(y_t, y_j, atol=OUTPUT_ATOL, err_msg=f"fc{i + 1} f={fraction}")
        x = np.maximum(y_t, 0)  # the next layer sees this layer's outputs
