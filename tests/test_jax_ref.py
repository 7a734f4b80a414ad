"""The JAX/Haiku reference on its own: shapes, normalization, init, SVD factors, rank rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ref.lowrank import factorized_params, rank_approximated_weight, rank_for, ranks_for
from jax_ref.model import CIFAR10_MEAN, CIFAR10_STD, dense_net, init_params, low_rank_net, normalize
from torch_impl.model import SMALL_WIDTHS

# Measured on an Intel Xeon (largest difference; margin = how far it could grow before failing):
NORM_ATOL = 1e-6  # float32 normalization against Python's float64; 1.7e-7 (margin 6), elementwise IEEE
EY_RTOL = 1e-3  # float32 SVD's truncation error against the float64 tail; 4.5e-9 relative (2e5)
# At full rank the tail is 0 and what remains is float32 round-off of the product, which
# grows with the matrix: bounded relative to its norm; 4.7e-5 of a norm of 50 (margin 10).
EY_NORM_RTOL = 1e-5
INIT_STD_RTOL = 0.05  # sample std of the seeded draws (no CPU dependence); 0.7% off (margin 7)

LOGITS_ATOL = 1e-4  # factorized at full rank vs dense, float32; 4.9e-7 (203)
TRUNC_STD_FACTOR = 0.8796256610342398
# Fused and separate train steps: the same operations; fusion may reorder float32 round-off
# on another CPU (measured on an Intel Xeon: bit-identical after 3 steps).
FUSED_RTOL, FUSED_ATOL = 1e-5, 1e-7


@pytest.fixture(scope="module")
def params():
    return init_params(42)


@pytest.fixture(scope="module")
def small_params():
    """The small network's (``SMALL_WIDTHS``): the same code at a fraction of the cost."""
    return init_params(42, "spatial", SMALL_WIDTHS)


@pytest.mark.slow
def test_parameter_shapes_and_count(params) -> None:
    shapes = {f"{m}/{n}": v.shape for m, d in params.items() for n, v in d.items()}
    assert shapes["conv1/w"] == (5, 5, 3, 18) and shapes["conv2/w"] == (5, 5, 18, 48)
    assert shapes["fc1/w"] == (3072, 3000) and shapes["fc5/w"] == (1000, 10)
    assert sum(v.size for v in jax.tree_util.tree_leaves(params)) == 21_257_026


@pytest.mark.parametrize("pooling, flat", [("spatial", 3072), ("haiku", 6144)])
def test_pooling_and_flatten(pooling: str, flat: int) -> None:
    import functools

    import haiku as hk

    from jax_ref.model import _trunk

    trunk = hk.without_apply_rng(hk.transform(functools.partial(_trunk, pooling=pooling)))
    x = normalize(np.zeros((2, 32, 32, 3), np.uint8))
    convs = trunk.init(jax.random.PRNGKey(0), x)
    assert trunk.apply(convs, x).shape == (2, flat)


@pytest.mark.slow
def test_the_take_home_sequential_as_haiku_runs_it() -> None:
    """The issue's figures for the take-home's hk.Sequential, verbatim (dm-haiku 0.0.17):
    its 2x2 AvgPool on NHWC pools over W and C, so conv2 sees 9 channels and fc1 6,144."""
    import haiku as hk

    from jax_ref.model import TAKE_HOME_NAMES, canonical, dense_net, pooling_of, take_home_net_fn

    literal = init_params(0, "haiku")
    assert list(literal) == list(TAKE_HOME_NAMES)
    assert literal["conv2_d_1"]["w"].shape == (5, 5, 9, 48) and literal["linear"]["w"].shape == (6144, 3000)
    assert sum(v.size for v in jax.tree_util.tree_leaves(literal)) == 30_462_226
    assert pooling_of(literal) == "haiku" and pooling_of(init_params(0)) == "spatial"
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    # the module really is the verbatim Sequential: transformed on its own, the same parameters
    verbatim = hk.without_apply_rng(hk.transform(take_home_net_fn))
    assert jax.tree_util.tree_structure(verbatim.init(jax.random.PRNGKey(0), x)) == \
        jax.tree_util.tree_structure(literal)
    # the named low-rank trunk with the take-home's pool arguments is the same network
    same = low_rank_net([None] * 5, "haiku").apply(canonical(literal), x)
    np.testing.assert_array_equal(np.asarray(dense_net("haiku").apply(literal, x)), np.asarray(same))


def test_normalize_matches_hand_computation() -> None:
    x = np.array([[[[0, 128, 255]]]], dtype=np.uint8)
    got = np.asarray(normalize(x))[0, 0, 0]
    want = [(v / 255.0 - m) / s for v, m, s in zip((0, 128, 255), CIFAR10_MEAN, CIFAR10_STD)]
    np.testing.assert_allclose(got, want, atol=NORM_ATOL)


@pytest.mark.slow
def test_haiku_default_init(params) -> None:
    for m, d in params.items():
        assert not np.any(np.asarray(d["b"])), m
        w = np.asarray(d["w"], dtype=np.float64)
        std = 1.0 / np.sqrt(np.prod(w.shape[:-1]))
        assert np.abs(w).max() <= 2 * std + 1e-7, m
        np.testing.assert_allclose(w.std(), std * TRUNC_STD_FACTOR, rtol=INIT_STD_RTOL, err_msg=m)


@pytest.mark.parametrize("rank", [1, 10, 40])
def test_rank_approximated_weight(rank: int) -> None:
    w = jnp.asarray(np.random.default_rng(0).normal(size=(64, 40)), jnp.float32)
    u, v = rank_approximated_weight(w, rank)
    assert u.shape == (64, rank) and v.shape == (rank, 40)
    s = np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)
    err = np.linalg.norm(np.asarray(u @ v, np.float64) - np.asarray(w, np.float64))
    assert err == pytest.approx(np.sqrt((s[rank:] ** 2).sum()), rel=EY_RTOL, abs=EY_NORM_RTOL * np.sqrt((s ** 2).sum()))
    with pytest.raises(ValueError, match="rank must be in"):
        rank_approximated_weight(w, 41)


def test_rank_rule_and_low_rank_net(small_params) -> None:
    assert ranks_for(0.1) == [300, 200, 200, 100, 1]
    assert ranks_for(0.1, "spatial", SMALL_WIDTHS) == [9, 6, 6, 3, 1]
    assert rank_for(0.7, 1000, 10) == 7
    with pytest.raises(ValueError, match="rank_fraction"):
        rank_for(0.0, 10, 10)
    ranks = ranks_for(1.0, "spatial", SMALL_WIDTHS)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    full = low_rank_net(ranks, "spatial", SMALL_WIDTHS).apply(factorized_params(small_params, ranks), x)
    dense = dense_net("spatial", SMALL_WIDTHS).apply(small_params, x)
    np.testing.assert_allclose(np.asarray(full), np.asarray(dense), atol=LOGITS_ATOL)


@pytest.mark.slow
def test_the_fused_donated_step_computes_what_the_two_programs_did(small_params) -> None:
    """The training loop's one-program step (update + EMA, buffers donated) against the update
    and EMA as separate programs: the same parameters after 3 steps, and the caller's
    parameters still alive (donation works on the loop's own copies)."""
    from jax_ref.train import train

    rng = np.random.default_rng(0)
    data = (rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 64))
    params = small_params
    fused = train(data, 3, 16, params=params, progress=False, fused=True)
    plain = train(data, 3, 16, params=params, progress=False, fused=False)
    for key in ("params", "avg_params"):
        for a, b in zip(jax.tree_util.tree_leaves(fused[key]), jax.tree_util.tree_leaves(plain[key])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=FUSED_RTOL, atol=FUSED_ATOL)
    np.testing.assert_allclose(fused["losses"], plain["losses"], rtol=FUSED_RTOL)
    assert float(jnp.sum(params["fc1"]["w"])) == float(jnp.sum(init_params(42, "spatial", SMALL_WIDTHS)["fc1"]["w"]))
