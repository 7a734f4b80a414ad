"""The take-home's fixed training recipe as a ``LightningModule``.

Recipe: Adam(lr=1e-3); loss = mean softmax cross-entropy + 1e-4 * 0.5 * sum of the
squares of *all* parameters (biases included, as the take-home's reference fix does);
the EMA of the parameters (``torch_impl.ema.TakeHomeEMA``) is what gets evaluated.

The L2 term's gradient, 1e-4 * p, is applied by Adam's coupled ``weight_decay`` (which
adds ``weight_decay * p`` to every gradient before the moment updates, exactly the
gradient of the term) instead of through autograd: on 2 CPU cores that saved 80 ms of
a 240 ms step. The logged loss still includes the term; ``recipe_loss`` is the
autograd form, and ``tests/test_lit_module.py`` checks that both give the same Adam step.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import nn

from torch_impl.model import DEFAULT_POOLING, HIDDEN_WIDTHS, NUM_CLASSES, build_model

LEARNING_RATE = 1e-3
L2_COEF = 1e-4
# "constant" is the recipe's; "cosine" decays to 0 over ``total_steps`` (recovery fine-tunes:
# the recipe's constant rate binds training the base network, not recovering a compressed one)
LR_SCHEDULES = ("constant", "cosine")


def l2_term(params: list[torch.Tensor], coef: float = L2_COEF) -> torch.Tensor:
    """``coef * 0.5 * sum(p**2)`` over every parameter tensor.

    Each tensor's sum of squares is its dot product with itself: one pass over the weights,
    where ``p.pow(2).sum()`` first writes an 85 MB temporary (measured on 2 CPU cores: 2.1 ms
    against 17.4 ms a step, for a value the training step only logs)."""
    return coef * 0.5 * torch.stack([torch.dot(p.reshape(-1), p.reshape(-1)) for p in params]).sum()


def recipe_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                coef: float = L2_COEF) -> torch.Tensor:
    """The take-home's full loss, differentiable: mean cross-entropy plus the L2 term."""
    return F.cross_entropy(model(images), labels) + l2_term(list(model.parameters()), coef)


class LitClassifier(L.LightningModule):
    """Wraps any classifier taking uint8 NHWC images (the dense ``Net`` by default)."""

    def __init__(self, model: nn.Module | None = None, init_seed: int = 42, lr: float = LEARNING_RATE,
                 l2_coef: float = L2_COEF, fused_adam: bool | None = None, pooling: str = DEFAULT_POOLING,
                 compile: bool = False, lr_schedule: str = "constant", total_steps: int | None = None,
                 widths: tuple[int, ...] = HIDDEN_WIDTHS) -> None:
        super().__init__()
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        if lr_schedule == "cosine" and not (isinstance(total_steps, int) and total_steps > 0):
            raise ValueError(f"a cosine schedule needs total_steps > 0, got {total_steps!r}")
        # "teacher": Lightning also reads the arguments of subclasses' __init__ (LitDistiller)
        self.save_hyperparameters(ignore=["model", "teacher"])
        self.model = model if model is not None else build_model(init_seed, pooling, widths)
        self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=NUM_CLASSES)
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=NUM_CLASSES)
        self.test_acc = torchmetrics.Accuracy(task="multiclass", num_classes=NUM_CLASSES)
        # The compiled forward is kept outside the module tree (no state_dict keys, and the
        # EMA's deep copy of this module never holds a function bound to the live weights);
        # built at the first training step, after that copy is made.
        object.__setattr__(self, "_compiled", None)

    def train_forward(self, images: torch.Tensor) -> torch.Tensor:
        """The model's forward for training steps: under ``torch.compile`` if asked (same
        arithmetic up to fusion order; evaluation always runs the plain module)."""
        if not self.hparams.compile:
            return self.model(images)
        if self._compiled is None:
            object.__setattr__(self, "_compiled", torch.compile(self.model))
        return self._compiled(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    data_loss_name = "xent"  # logged as train/<name>

    def data_loss(self, images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss without the L2 term: the recipe's mean cross-entropy (subclasses swap it)."""
        return F.cross_entropy(logits, labels)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self.train_forward(images)
        loss = self.data_loss(images, logits, labels)
        with torch.no_grad():  # its gradient comes from Adam's weight_decay, see module doc
            l2 = l2_term([p.detach() for p in self.model.parameters()], self.hparams.l2_coef)
        self.train_acc(logits, labels)
        self.log_dict({"train/loss": loss + l2, f"train/{self.data_loss_name}": loss, "train/acc": self.train_acc},
                      prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], metric: torchmetrics.Metric,
                   prefix: str) -> None:
        images, labels = batch
        logits = self.model(images)
        metric(logits, labels)
        self.log(f"{prefix}/loss", F.cross_entropy(logits, labels), on_epoch=True)
        self.log(f"{prefix}/acc", metric, on_epoch=True, prog_bar=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_acc, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_acc, "test")

    def configure_optimizers(self) -> OptimizerLRScheduler:
        fused = self.hparams.fused_adam
        if fused is None:  # the fused kernel exists on CPU and CUDA; foreach elsewhere
            fused = self.device.type in ("cpu", "cuda")
        adam = torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.l2_coef, fused=fused)
        if self.hparams.get("lr_schedule", "constant") == "constant":
            return adam
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(adam, T_max=self.hparams.total_steps)
        return {"optimizer": adam, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}
