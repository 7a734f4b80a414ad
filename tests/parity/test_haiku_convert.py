"""Both networks in and out: Haiku parameter files, torch checkpoints, and the pooling switch."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from jax_ref.model import init_params
from jax_ref.train import save_params
from torch_impl.checkpoint import load_model, save_model
from torch_impl.model import (
    HIDDEN_WIDTHS,
    POOLINGS,
    SMALL_WIDTHS,
    HaikuAvgPool,
    build_model,
    mlp_shapes,
    pooling_of,
)
from torch_impl.parity.haiku_convert import haiku_pooling, haiku_to_torch, load_haiku_params, torch_to_haiku

# Parameter counts of the two networks (the figures, from hk.transform of the take-home).
PARAMS = {"spatial": 21_257_026, "haiku": 30_462_226}


@pytest.fixture(scope="module")
def nets(full_size_nets) -> dict[str, torch.nn.Module]:
    return full_size_nets


@pytest.fixture(scope="module")
def small_nets() -> dict[str, torch.nn.Module]:
    return {p: build_model(0, p, SMALL_WIDTHS) for p in POOLINGS}


@pytest.mark.slow
@pytest.mark.parametrize("pooling", POOLINGS)
def test_each_network_has_its_shapes_and_count(nets, pooling: str) -> None:
    net = nets[pooling]
    assert sum(p.numel() for p in net.parameters()) == PARAMS[pooling]
    assert net.classifier[0].in_features == mlp_shapes(pooling)[0][0] == (3072 if pooling == "spatial" else 6144)
    assert net(torch.zeros(2, 32, 32, 3, dtype=torch.uint8)).shape == (2, 10)
    assert pooling_of(net.state_dict()) == pooling


def test_haiku_pool_averages_columns_and_channels_not_rows() -> None:
    """Ground truth by hand: out[c, h, w] = mean of x[2c:2c+2, h, 2w:2w+2]."""
    x = torch.arange(2 * 6 * 3 * 5, dtype=torch.float32).reshape(2, 6, 3, 5)  # odd W: the last column dropped
    got = HaikuAvgPool()(x)
    assert got.shape == (2, 3, 3, 2)
    for c in range(3):
        for w in range(2):
            torch.testing.assert_close(got[:, c, :, w], x[:, 2 * c:2 * c + 2, :, 2 * w:2 * w + 2].mean(dim=(1, 3)))


def test_unknown_pooling_is_one_line() -> None:
    with pytest.raises(ValueError, match="pooling must be one of spatial, haiku .* got 'max'"):
        build_model(0, "max")


@pytest.mark.parametrize("widths", [SMALL_WIDTHS, pytest.param(HIDDEN_WIDTHS, marks=pytest.mark.slow)],
                         ids=["small", "full-size"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_jax_ref_file_loads_into_torch_and_back_exactly(tmp_path: Path, pooling: str, widths: tuple) -> None:
    """jax_ref writes the take-home's names; torch reads them, finds the network and its widths,
    and converts back to the same arrays bit for bit."""
    params = {m: {n: np.asarray(v) for n, v in d.items()} for m, d in init_params(1, pooling, widths).items()}
    path = save_params(tmp_path / "params.npz", params)
    with np.load(path) as z:
        assert "conv2_d/w" in z.files and "linear_4/b" in z.files
    tree = load_haiku_params(path)
    assert haiku_pooling(tree) == pooling
    net = haiku_to_torch(tree)
    assert net.pooling == pooling and net.widths == widths
    back = torch_to_haiku(net, "take-home")
    for old, new in zip(("conv1", "conv2", "fc1", "fc2", "fc3", "fc4", "fc5") if set(params) != set(back) else tree,
                        back):
        for n in ("w", "b"):
            np.testing.assert_array_equal(back[new][n], np.asarray(params[old][n]), err_msg=f"{new}/{n}")


def test_a_pickle_needs_the_trust_flag(tmp_path: Path) -> None:
    tree = torch_to_haiku(build_model(0, "haiku", SMALL_WIDTHS), "take-home")
    path = tmp_path / "params.pkl"
    path.write_bytes(pickle.dumps(tree))
    with pytest.raises(ValueError, match="is a pickle, which can run code as it loads; pass --trust-pickle"):
        load_haiku_params(path)
    net = haiku_to_torch(load_haiku_params(path, trust_pickle=True))
    assert net.pooling == "haiku"
    torch.testing.assert_close(net.classifier[0].weight, torch.from_numpy(tree["linear"]["w"].T), rtol=0, atol=0)


@pytest.mark.parametrize("bad, message", [
    ("missing", "no Haiku parameters at"),
    ("suffix", "unknown suffix '.h5'"),
    ("flat_key", "key 'w' is not module/name"),
    ("shapes", r"match neither network: conv2 w \(5, 5, 18, 48\), fc1 w \(6144, 96\)"),
])
def test_bad_haiku_files_are_one_line_errors(small_nets, tmp_path: Path, bad: str, message: str) -> None:
    nets = small_nets
    path = tmp_path / ("params.h5" if bad == "suffix" else "params.npz")
    if bad == "suffix":
        path.write_bytes(b"")
    elif bad == "flat_key":
        np.savez(path, w=np.zeros(3))
    elif bad == "shapes":  # a spatial trunk with a literal MLP: neither network
        tree = torch_to_haiku(nets["spatial"], "take-home")
        tree["linear"] = torch_to_haiku(nets["haiku"], "take-home")["linear"]
        np.savez(path, **{f"{m}/{n}": v for m, d in tree.items() for n, v in d.items()})
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        haiku_to_torch(load_haiku_params(path))


@pytest.mark.parametrize("pooling", POOLINGS)
def test_checkpoint_records_the_network_and_loads_without_a_flag(small_nets, tmp_path: Path, pooling: str) -> None:
    net = small_nets[pooling]
    loaded, meta = load_model(save_model(tmp_path / "model.pt", net, meta={"x": 1}))
    assert loaded.pooling == meta["pooling"] == pooling and meta["x"] == 1 and loaded.widths == SMALL_WIDTHS
    for (k, a), b in zip(net.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
