"""Recovery fine-tuning of a compressed model: a short Lightning run with the fixed recipe.

Same loss (cross-entropy + 1e-4 * 0.5 * sum p^2) and optimizer (Adam, 1e-3) as training,
or, given a teacher, the distillation loss of ``torch_impl.distill`` with the same L2 term.
What is evaluated afterwards is the live weights, not an EMA: with the recipe's EMA step
of 0.001, after 300 steps the average would still hold 0.999**300 = 74% of the weights
the fine-tune started from, i.e. mostly the un-recovered model.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import lightning as L
import torch
from torch import nn

from torch_impl.data import CIFAR10DataModule
from torch_impl.distill import LitDistiller
from torch_impl.lit_module import LitClassifier


def finetune(model: nn.Module, datamodule: CIFAR10DataModule, steps: int, seed: int = 0,
             progress: bool = False, accelerator: str = "auto", teacher: nn.Module | None = None
             ) -> tuple[nn.Module, dict[str, Any]]:
    """Trains ``model`` in place for ``steps`` optimizer steps; returns it and a small record.
    With ``teacher``, the loss is distilled from it (``torch_impl.distill``)."""
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    L.seed_everything(seed, workers=True, verbose=False)
    module = (LitClassifier(model=model.train()) if teacher is None
              else LitDistiller(model.train(), copy.deepcopy(teacher)))
    trainer = L.Trainer(max_steps=steps, accelerator=accelerator, devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
    model = module.model.eval()
    if next(model.parameters()).device.type != "cpu":
        model = model.cpu()
    return model, {"finetune_steps": trainer.global_step, "distilled": teacher is not None, "finetune_s": time.perf_counter() - start,
                   "finetune_batch_size": datamodule.hparams.batch_size}


@torch.no_grad()
def zero_fraction(model: nn.Module) -> float:
    """Share of exactly-zero entries among the linear weights (pruning keeps its zeros only
    if the fine-tune does not move them, so this is reported after fine-tuning too)."""
    ws = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return float(sum((w == 0).sum() for w in ws) / sum(w.numel() for w in ws))
