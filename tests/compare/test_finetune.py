"""Recovery fine-tuning returns the uniform average of its weights over the last part of the run."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from tests.conftest import write_image_folder
from torch_impl.compare.finetune import TailAverage, finetune, zero_fraction
from torch_impl.compare.non_svd import magnitude_prune, make_permanent
from torch_impl.data import CIFAR10DataModule
from torch_impl.model import SMALL_WIDTHS, build_model

pytestmark = pytest.mark.slow  # real-data training or whole training runs: make test-fast skips it

# fp32 running mean of 2-3 snapshots against their mean: measured 1.5e-8 on an Intel Xeon
# (margin 67); without averaging the weights equal the last snapshot exactly (measured 0).
AVERAGE_ATOL = 1e-6


class Snapshots(L.Callback):
    """The live weights after every optimizer step."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.states.append({k: v.detach().clone() for k, v in pl_module.model.state_dict().items()})


@pytest.fixture(scope="module")
def dm(tmp_path_factory) -> CIFAR10DataModule:
    root = write_image_folder(tmp_path_factory.mktemp("cifar"), n_train=4, n_test=2)
    return CIFAR10DataModule(str(root), str(root / "cache"), batch_size=8, val_fraction=0.0)


@pytest.mark.parametrize("steps,share,averaged", [(4, 0.5, 2), (5, 0.5, 2), (3, 0.01, 1), (3, 1.0, 3)])
def test_finetune_returns_the_tail_average(dm, steps: int, share: float, averaged: int) -> None:
    snaps = Snapshots()
    model, info = finetune(build_model(0, widths=SMALL_WIDTHS), dm, steps, accelerator="cpu", averaged_share=share,
                           callbacks=[snaps])
    assert len(snaps.states) == steps and info["finetune_averaged_share"] == share
    for k, v in model.state_dict().items():
        mean = torch.stack([s[k] for s in snaps.states[-averaged:]]).mean(0)
        torch.testing.assert_close(v, mean, rtol=0, atol=AVERAGE_ATOL, msg=lambda m: f"{k}: {m}")
    live, _ = finetune(build_model(0, widths=SMALL_WIDTHS), dm, steps, accelerator="cpu", averaged_share=None)
    for k, v in live.state_dict().items():  # no averaging: the last live weights (same seed, same steps)
        torch.testing.assert_close(v, snaps.states[-1][k], rtol=0, atol=AVERAGE_ATOL)


def test_pruned_model_finetunes_with_averaging_and_keeps_its_zeros(dm) -> None:
    pruned = magnitude_prune(build_model(0, widths=SMALL_WIDTHS), 0.8, permanent=False)
    model, _ = finetune(pruned, dm, 3, accelerator="cpu")
    assert zero_fraction(make_permanent(model)) == pytest.approx(0.8, abs=1e-3)


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"averaged share .* must be in \(0, 1\]"):
        TailAverage(10, share=1.5)
