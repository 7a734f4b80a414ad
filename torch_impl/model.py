"""The take-home's conv+MLP as a plain ``nn.Module``, with Haiku's semantics.

Shape glossary (N = batch):
    input            uint8  [N, 32, 32, 3]    NHWC, as CIFAR-10 is stored
    normalize        fp32   [N, 3, 32, 32]    a channels-last *view* of the NHWC input
    conv1 + pool     fp32   [N, 18, 16, 16]
    conv2 + pool     fp32   [N, 48, 8, 8]
    flatten          fp32   [N, 3072]         H, W, C order (Haiku's hk.Flatten on NHWC)
    mlp              fp32   [N, 3000] -> [N, 2000] -> [N, 2000] -> [N, 1000] -> [N, 10]

Torch keeps its own weight layouts (Linear ``[out, in]``, conv OIHW); converting to
Haiku's ``[in, out]`` and HWIO is the job of ``torch_impl.haiku_convert``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
MLP_WIDTHS = (3000, 2000, 2000, 1000, NUM_CLASSES)
FLAT_FEATURES = 8 * 8 * 48
MLP_SHAPES = tuple(zip((FLAT_FEATURES, *MLP_WIDTHS[:-1]), MLP_WIDTHS))  # (in, out) per linear layer
# The weight layers' names in a Net (and its state dict), defined here once: positions in
# ``features`` and ``classifier``, which Net.__init__ checks as it builds them.
CONV_LAYERS = ("features.0", "features.4")  # conv 5x5 3->18, conv 5x5 18->48
LINEAR_LAYERS = ("classifier.0", "classifier.2", "classifier.4", "classifier.6", "classifier.8")  # fc1..fc5


class Normalize(nn.Module):
    """``(x / 255 - mean) / std`` on uint8 NHWC images; returns an NCHW view.

    Casting happens in floating point before any arithmetic: the original take-home cast
    to int8 first, which wraps pixels above 127 to negative values. The float type is the
    buffers' (float32 unless the model was converted with ``.double()``), so a float64
    model computes in float64 from its first operation.
    """

    def __init__(self, mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD):
        super().__init__()
        self._constants = {"mean": tuple(mean), "std": tuple(std)}
        for name, values in self._constants.items():
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32), persistent=False)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        # ``.double()`` would widen the float32-rounded constants (off by ~3e-8, which a
        # float64 parity check sees); rebuild them from the decimals in the new dtype.
        super()._apply(fn, recurse)
        for name, values in self._constants.items():
            buf = getattr(self, name)
            setattr(self, name, torch.tensor(values, dtype=buf.dtype, device=buf.device))
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(
                f"expected images of shape [N, 32, 32, 3] (NHWC), got {tuple(images.shape)}; "
                "pass CIFAR-10 images as stored, not transposed to NCHW"
            )
        x = (images.to(self.mean.dtype) / 255.0 - self.mean) / self.std
        # NHWC memory seen as NCHW is exactly torch's channels_last format, so the
        # convolutions run channels-last without a copy.
        return x.permute(0, 3, 1, 2)


class FlattenHWC(nn.Module):
    """Flatten NCHW activations in H, W, C order, as ``hk.Flatten`` does on NHWC."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


def haiku_init_(module: nn.Module) -> None:
    """Haiku's default init: truncated normal (+-2 std), std 1/sqrt(fan_in), zero bias."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            fan_in = m.weight[0].numel()  # in (Linear) or in*kh*kw (conv)
            std = 1.0 / math.sqrt(fan_in)
            nn.init.trunc_normal_(m.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Net(nn.Module):
    """Conv 5x5->18, ReLU, AvgPool, ReLU, Conv 5x5->48, ReLU, AvgPool, Flatten, MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.features = nn.Sequential(
            nn.Conv2d(3, 18, kernel_size=5, padding=2),  # SAME padding for an odd kernel
            nn.ReLU(),
            nn.AvgPool2d(2, 2),
            nn.ReLU(),
            nn.Conv2d(18, 48, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.AvgPool2d(2, 2),
            FlattenHWC(),
        )
        layers: list[nn.Module] = []
        in_features = FLAT_FEATURES
        for i, width in enumerate(MLP_WIDTHS):
            layers.append(nn.Linear(in_features, width))
            if i < len(MLP_WIDTHS) - 1:
                layers.append(nn.ReLU())
            in_features = width
        self.classifier = nn.Sequential(*layers)
        assert [n for n, m in self.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))] == [
            *CONV_LAYERS, *LINEAR_LAYERS], "CONV_LAYERS / LINEAR_LAYERS no longer name Net's layers"
        haiku_init_(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(images)))


def build_model(seed: int = 42) -> Net:
    """A freshly initialised network; the init depends only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Net()
