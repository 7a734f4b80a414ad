"""The EMA callback: it starts at the initial weights and follows the take-home's rule."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import TinyNet, learnable_images
from torch_impl.ema import TakeHomeEMA
from torch_impl.lit_module import LitClassifier

# Measured on an Intel Xeon (largest difference; margin = how far it could grow before failing):
EMA_ATOL = 1e-7  # fp32 EMA against the rule by hand; 7.5e-9 (13)


class RecordParams(Callback):
    def __init__(self) -> None:
        self.history: list[list[torch.Tensor]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.history.append([p.detach().clone() for p in pl_module.parameters()])

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.history.append([p.detach().clone() for p in pl_module.parameters()])


def test_ema_starts_at_init_and_follows_the_take_home_rule() -> None:
    torch.manual_seed(0)
    images, labels = learnable_images(3, seed=0)
    loader = DataLoader(TensorDataset(torch.from_numpy(images), torch.from_numpy(labels)), batch_size=10)
    lit = LitClassifier(model=TinyNet())
    ema, rec = TakeHomeEMA(step=0.1), RecordParams()  # a large step makes every update visible
    trainer = L.Trainer(max_steps=5, callbacks=[ema, rec], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(lit, loader)
    assert len(rec.history) == 6  # the initial weights and five steps
    avg = [p.clone() for p in rec.history[0]]
    for params in rec.history[1:]:
        avg = [0.9 * a + 0.1 * p for a, p in zip(avg, params)]
    for got, want in zip(lit.parameters(), avg):  # after fit the module holds the EMA
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=EMA_ATOL)
    for got, want in zip(ema.live_state_dict.values(), rec.history[-1]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_ema_step_is_validated() -> None:
    with pytest.raises(ValueError, match="EMA step"):
        TakeHomeEMA(step=0.0)
