"""Shared fixtures: small image-folder trees written by the tests, and the real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from torch_impl.data import CLASSES

# The real CIFAR-10 for the tests that need it: $CIFAR10_DIR, else a checkout's sibling
# ../shared/cifar10 (where CI lays it); those tests skip when neither exists.
REAL_DATA = Path(os.environ.get("CIFAR10_DIR", Path(__file__).resolve().parents[2] / "shared" / "cifar10"))

# Each class gets its own colour so that a few training steps can learn it.
PALETTE = np.random.default_rng(1).integers(30, 226, size=(len(CLASSES), 3))


def learnable_images(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    noise = rng.normal(0, 20, size=(len(labels), 32, 32, 3))
    images = np.clip(PALETTE[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels


def write_image_folder(root: Path, n_train: int = 6, n_test: int = 2, fmt: str = "png") -> Path:
    """``root/train/<class>/i.png`` + ``root/test/<class>/i.png`` with learnable colours."""
    from PIL import Image

    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = learnable_images(n, seed)
        for i, (img, label) in enumerate(zip(images, labels)):
            d = root / split / CLASSES[label]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}.{fmt}")
    return root


@pytest.fixture(autouse=True)
def quick_roofline(monkeypatch) -> None:
    """Every sweep and comparison a test runs measures the roofline, 3 s at its real setting; no
    test checks its value beyond being positive (test_latency), so each block here is short."""
    from torch_impl.measure import roofline

    monkeypatch.setattr(roofline, "MIN_RUN_S", 0.05)


@pytest.fixture(scope="session")
def net_svds() -> tuple[nn.Module, dict]:
    """A dense small Net (``SMALL_WIDTHS``, seed 0) and its layer SVDs, made once per session.
    Shared by many tests: none may modify either."""
    from torch_impl.lowrank import model_svds
    from torch_impl.model import SMALL_WIDTHS, build_model

    net = build_model(0, widths=SMALL_WIDTHS).eval()
    return net, model_svds(net)


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "cifar")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


class TinyNet(nn.Module):
    """A small stand-in classifier on uint8 NHWC images, for fast Lightning tests."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(32 * 32 * 3, len(CLASSES))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(images.float().flatten(1) / 255.0)
