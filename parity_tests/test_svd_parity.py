"""SVD parity that does not depend on singular-vector signs: values, reconstructions, outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jax_ref.lowrank import rank_approximated_weight, rank_for
from torch_impl.lowrank import LowRankLinear, linear_svd, rank_from_fraction
from torch_impl.parity.haiku_convert import torch_to_haiku

# Both SVDs are backward stable: each computed singular value is within c * eps * s_max of
# the exact one (Weyl's inequality), and so is each element of a full-rank reconstruction.
# Torch works in float64 and JAX in float32, so the float32 side sets the error, and the
# tolerances on the session's trained layers are multiples of eps32 * s_max of each layer.
EPS32 = float(np.finfo(np.float32).eps)
# Measured on an Intel Xeon, largest over both networks' layers (s_max 1.1-11): singular
# values 5.2 (margin 19), reconstructions 2.4 (42); a real disagreement is O(1 / eps32).
SVALS_TOL_EPS = 100  # x eps32 * s_max of the layer
RECON_TOL_EPS = 100
# The synthetic layers below have s_max ~ 0.04-0.06 (measured on an Intel Xeon; margin = how far
# it could grow before failing):
RECON_ATOL = 1e-5  # 3.2e-8 truncated (314)
OUTPUT_ATOL = 1e-4  # truncated layers' outputs; 7.1e-8 (1,400)
FRACTIONS = (1.0, 0.7, 0.5, 0.2, 0.1)
# Truncation compares singular *subspaces*, which float32 can only pin down where the
# spectrum has a gap: random-init weights have near-equal singular values at every cut
# (their outputs differed by 1.8e-4 at f=0.7). So truncated outputs are compared on
# layers with the real aspect ratios (scaled down 4x) and a spectrum that decays like a
# trained one, s_i = exp(-i / 50) / sqrt(in): adjacent gaps of 2%, far above round-off.
SCALED_SHAPES = ((768, 750), (750, 500), (500, 500), (500, 250), (250, 10))


def spectral_weight(n_in: int, n_out: int, seed: int) -> torch.nn.Linear:
    rng = np.random.default_rng(seed)
    k = min(n_in, n_out)
    q1, _ = np.linalg.qr(rng.normal(size=(n_out, k)))
    q2, _ = np.linalg.qr(rng.normal(size=(n_in, k)))
    s = np.exp(-np.arange(k) / 50) / np.sqrt(n_in)
    lin = torch.nn.Linear(n_in, n_out)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy((q1 * s) @ q2.T))
        lin.bias.uniform_(-0.1, 0.1)
    return lin


@pytest.fixture(scope="module")
def layers(trained_net, trained_svds):
    """The five linear layers of the session's trained network (either network), their Haiku
    parameters (named ``fcK``), and each side's SVDs (the session's)."""
    linears = [m for m in trained_net.classifier if isinstance(m, torch.nn.Linear)]
    t_svds, j_svds = trained_svds
    names = [n for n, m in trained_net.named_modules() if isinstance(m, torch.nn.Linear)]
    return linears, torch_to_haiku(trained_net, "canonical"), [t_svds[n] for n in names], j_svds


def test_rank_rules_agree() -> None:
    for f in np.arange(1.0, 0.0, -0.05):
        for shape in ((6144, 3000), (3072, 3000), (3000, 2000), (2000, 1000), (1000, 10)):
            assert rank_from_fraction(float(f), *shape) == rank_for(float(f), *shape)


@pytest.mark.slow
def test_singular_values_agree(layers) -> None:
    linears, _, t_svds, j_svds = layers
    for i in range(len(linears)):
        s_t = t_svds[i][1].numpy()
        s_j = np.asarray(j_svds[f"fc{i + 1}"][1])
        err = np.abs(s_t - s_j).max() / (EPS32 * s_t[0])
        assert err <= SVALS_TOL_EPS, f"fc{i + 1}: singular values differ by {err:.1f} x eps32 * s_max"


@pytest.fixture(scope="module")
def spectral_layers() -> list[tuple[torch.nn.Linear, tuple, tuple]]:
    """Each synthetic layer with torch's and JAX's SVD of it, computed once for every fraction."""
    out = []
    for seed, (i, o) in enumerate(SCALED_SHAPES):
        lin = spectral_weight(i, o, seed)
        w_haiku = lin.weight.detach().numpy().T.copy()  # [in, out]
        out.append((lin, linear_svd(lin), np.linalg.svd(w_haiku, full_matrices=False)))
    return out


@pytest.mark.slow
def test_full_rank_reconstructions_of_the_real_layers_agree(layers) -> None:
    linears, params, t_svds, j_svds = layers
    for i, lin in enumerate(linears):
        low = LowRankLinear.from_linear(lin, rank_fraction=1.0, svd=t_svds[i])
        u, v = rank_approximated_weight(params[f"fc{i + 1}"]["w"], low.rank, j_svds[f"fc{i + 1}"])
        err = np.abs(low.reconstructed_weight().detach().numpy().T - np.asarray(u @ v)).max()
        err /= EPS32 * float(t_svds[i][1][0])
        assert err <= RECON_TOL_EPS, f"fc{i + 1}: reconstructions differ by {err:.1f} x eps32 * s_max"


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_truncated_reconstructions_and_outputs_agree(spectral_layers, fraction: float) -> None:
    x = np.random.default_rng(0).normal(size=(8, SCALED_SHAPES[0][0])).astype(np.float32)
    for i, (lin, t_svd, j_svd) in enumerate(spectral_layers):
        low = LowRankLinear.from_linear(lin, rank_fraction=fraction, svd=t_svd)
        w_haiku = lin.weight.detach().numpy().T.copy()  # [in, out]
        u, v = rank_approximated_weight(w_haiku, low.rank, j_svd)
        recon_j = np.asarray(u @ v)
        recon_t = low.reconstructed_weight().detach().numpy().T
        np.testing.assert_allclose(recon_t, recon_j, atol=RECON_ATOL, err_msg=f"layer {i} f={fraction}")
        y_t = low(torch.from_numpy(x)).detach().numpy()
        y_j = np.asarray(x @ u @ v + lin.bias.detach().numpy())
        np.testing.assert_allclose(y_t, y_j, atol=OUTPUT_ATOL, err_msg=f"layer {i} f={fraction}")
        x = np.maximum(y_t, 0)  # the next layer sees this layer's outputs
