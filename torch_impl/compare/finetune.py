"""Recovery fine-tuning of a compressed model: a short Lightning run with the fixed recipe.

Same loss (cross-entropy + 1e-4 * 0.5 * sum p^2) and optimizer (Adam, 1e-3) as training,
or, given a teacher, the distillation loss of ``torch_impl.compare.distill`` with the same L2 term.

What is evaluated afterwards is an average of the weights, as in the recipe, but not the
recipe's EMA: with its step of 0.001, after 400 steps the EMA would still hold
0.999**400 = 67% of the weights the fine-tune started from, i.e. mostly the un-recovered
model. Instead the weights are averaged uniformly over the last half of the fine-tune
(stochastic weight averaging, Izmailov et al. 2018, with Lightning's ``WeightAveraging``):
at Adam's constant 1e-3 the live weights jump around (the dense training run's live
weights scored 66.5% against its EMA's 70.5%), and the average lands between the jumps.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import nn
from torch.optim.swa_utils import get_swa_multi_avg_fn

from torch_impl.compare.distill import LitDistiller
from torch_impl.data import CIFAR10DataModule
from torch_impl.lit_module import LitClassifier

AVERAGED_SHARE = 0.5  # the last half of the fine-tune's steps are averaged


class TailAverage(WeightAveraging):
    """Uniform average of the weights after each of the last ``share`` of ``steps`` steps
    (the foreach ``multi_avg_fn``: the per-tensor default costs ~10x more on CPU, see ema.py)."""

    def __init__(self, steps: int, share: float = AVERAGED_SHARE) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"the averaged share of the fine-tune must be in (0, 1], got {share}")
        super().__init__(use_buffers=True, multi_avg_fn=get_swa_multi_avg_fn())
        self.start = steps - max(1, int(steps * share))  # at least the last step is averaged

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start


def _detach_pruned(module: nn.Module) -> None:
    """``torch.nn.utils.prune`` keeps ``weight = weight_orig * weight_mask`` as a plain
    attribute, recomputed before every forward; between forwards it is a non-leaf tensor,
    which ``copy.deepcopy`` (done by ``WeightAveraging``) refuses. Its detached value is
    equivalent, as the next forward recomputes it from ``weight_orig``."""
    for name, _ in list(module.named_parameters(recurse=False)):
        if name.endswith("_orig") and hasattr(module, name[: -len("_orig")]):
            setattr(module, name[: -len("_orig")], getattr(module, name[: -len("_orig")]).detach())


def finetune(model: nn.Module, datamodule: CIFAR10DataModule, steps: int, seed: int = 0,
             progress: bool = False, accelerator: str = "auto", teacher: nn.Module | None = None,
             averaged_share: float | None = AVERAGED_SHARE, callbacks: list[L.Callback] | None = None,
             lr_schedule: str = "constant") -> tuple[nn.Module, dict[str, Any]]:
    """Trains ``model`` in place for ``steps`` optimizer steps; returns it (averaged over the
    last ``averaged_share`` of the steps; None: the live weights) and a small record. With
    ``teacher``, the loss is distilled from it (``torch_impl.compare.distill``);
    ``lr_schedule`` "cosine" decays Adam's rate to 0 over the steps (``LR_SCHEDULES``)."""
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    L.seed_everything(seed, workers=True, verbose=False)
    for m in model.modules():  # torch.nn.utils.prune's masked weights: see _detach_pruned
        _detach_pruned(m)
    schedule = {"lr_schedule": lr_schedule, "total_steps": steps}
    module = (LitClassifier(model=model.train(), **schedule) if teacher is None
              else LitDistiller(model.train(), teacher, **schedule))
    callbacks = ([TailAverage(steps, averaged_share)] if averaged_share else []) + list(callbacks or [])
    trainer = L.Trainer(max_steps=steps, accelerator=accelerator, devices=1, logger=False, callbacks=callbacks,
                        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
    model = module.model.eval()  # WeightAveraging has copied the average in at the end of fit
    if next(model.parameters()).device.type != "cpu":
        model = model.cpu()
    return model, {"finetune_steps": trainer.global_step, "distilled": teacher is not None,
                   "finetune_averaged_share": averaged_share,
                   "finetune_schedule": lr_schedule, "finetune_s": time.perf_counter() - start,
                   "finetune_batch_size": datamodule.hparams.batch_size}


@torch.no_grad()
def zero_fraction(model: nn.Module) -> float:
    """Share of exactly-zero entries among the linear weights (pruning keeps its zeros only
    if the fine-tune does not move them, so this is reported after fine-tuning too)."""
    ws = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return float(sum((w == 0).sum() for w in ws) / sum(w.numel() for w in ws))
