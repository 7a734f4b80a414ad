"""A network with ``Net``'s layout, small enough to export, quantize and compile in seconds."""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.model import FlattenHWC, Normalize, haiku_init_


class SmallNet(nn.Module):
    """``Net``'s layout (normalize, features, classifier) at a size that compiles in seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2, 2), FlattenHWC())
        self.classifier = nn.Sequential(nn.Linear(16 * 16 * 4, 64), nn.ReLU(), nn.Linear(64, 10))
        torch.manual_seed(0)
        haiku_init_(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(images)))
