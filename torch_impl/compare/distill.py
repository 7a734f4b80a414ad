"""Recovery fine-tuning by knowledge distillation from the dense model (Hinton et al. 2015).

A compressed model that has lost several points learns faster from the dense model's
soft predictions than from the labels alone: the teacher's full output distribution
carries which wrong classes are close, on every training image. The loss is

    (1 - alpha) * CE(student, labels) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

plus the recipe's L2 term (Adam's coupled weight decay, as in ``LitClassifier``). The
teacher runs frozen in eval mode. It is kept out of the module's submodules, so that it is
neither optimized, nor averaged by weight-averaging callbacks, nor saved in checkpoints;
``on_fit_start`` moves it to the student's device.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from torch_impl.lit_module import LitClassifier

KD_TEMPERATURE = 4.0
KD_ALPHA = 0.9


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float = KD_TEMPERATURE, alpha: float = KD_ALPHA) -> torch.Tensor:
    """Hinton's loss; ``T^2`` keeps the soft term's gradient scale independent of ``T``."""
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1), log_target=True, reduction="batchmean")
    return (1 - alpha) * F.cross_entropy(student_logits, labels) + alpha * temperature ** 2 * soft


class LitDistiller(LitClassifier):
    """``LitClassifier`` whose training loss is ``distillation_loss`` against ``teacher``."""

    def __init__(self, model: nn.Module, teacher: nn.Module, temperature: float = KD_TEMPERATURE,
                 alpha: float = KD_ALPHA, lr_schedule: str = "constant", total_steps: int | None = None) -> None:
        if temperature <= 0 or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distillation needs temperature > 0 and alpha in [0, 1], got {temperature}, {alpha}")
        super().__init__(model=model, lr_schedule=lr_schedule, total_steps=total_steps)
        self.save_hyperparameters(ignore=["model", "teacher"])
        # A frozen copy (the caller's model keeps its flags), in a tuple: not a registered submodule.
        self._teacher = (copy.deepcopy(teacher).eval().requires_grad_(False),)

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def on_fit_start(self) -> None:
        self._teacher = (self.teacher.to(self.device),)

    data_loss_name = "distill"

    def data_loss(self, images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        return distillation_loss(logits, teacher_logits, labels, self.hparams.temperature, self.hparams.alpha)
