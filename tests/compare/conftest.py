"""The comparison's test fixtures: a context on the small network, images."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import learnable_images, write_image_folder
from torch_impl.compare.recipes import Context
from torch_impl.data import CIFAR10DataModule


def make_ctx(tmp_path_factory, net_and_svds) -> Context:
    root = write_image_folder(tmp_path_factory.mktemp("cifar"), n_train=4, n_test=2)
    dm = CIFAR10DataModule(str(root), str(root / "cache"), batch_size=8, val_fraction=0.0)
    return Context(*net_and_svds, torch.from_numpy(learnable_images(6, seed=5)[0]), dm, "cpu")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, net_svds) -> Context:
    """The small network's: every recipe's code runs the same on it."""
    return make_ctx(tmp_path_factory, net_svds)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.from_numpy(learnable_images(2, seed=9)[0])
