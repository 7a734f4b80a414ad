"""The take-home's conv+MLP as a plain ``nn.Module``, with Haiku's semantics.

Two networks, by the pooling (``Net(pooling=...)``):
  "spatial" (default): the network the take-home meant, 2x2/2 average pools over H and W.
  "haiku": the network the take-home's code computes. Its ``hk.AvgPool(window_shape=(2, 2),
      strides=(2, 2))`` on NHWC input gets the window (1, 1, 2, 2) from Haiku, so it averages
      pairs of neighbouring *columns and channels* and leaves the rows alone.

Shape glossary (N = batch; activations NCHW, as torch holds them):
                     spatial                  haiku
    input            uint8 [N, 32, 32, 3]     (the same)  NHWC, as CIFAR-10 is stored
    normalize        [N, 3, 32, 32]           (the same)  a channels-last *view* of the input
    conv1 + pool     [N, 18, 16, 16]          [N, 9, 32, 16]
    conv2 + pool     [N, 48, 8, 8]            [N, 24, 32, 8]   (conv2: 18 -> 48 | 9 -> 48)
    flatten          [N, 3072]                [N, 6144]   H, W, C order (hk.Flatten on NHWC)
    mlp              [N, 3000] -> [N, 2000] -> [N, 2000] -> [N, 1000] -> [N, 10]

``widths`` (default ``HIDDEN_WIDTHS``) sets the four hidden layers' sizes: the tests run every
code path on a small network (``SMALL_WIDTHS``) whose layers, names and shapes' rules are the
same; ``load_model`` reads the widths from the weights, as it reads the pooling.

Torch keeps its own weight layouts (Linear ``[out, in]``, conv OIHW); converting to
Haiku's ``[in, out]`` and HWIO is the job of ``torch_impl.parity.haiku_convert``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
HIDDEN_WIDTHS = (3000, 2000, 2000, 1000)
MLP_WIDTHS = (*HIDDEN_WIDTHS, NUM_CLASSES)
SMALL_WIDTHS = (96, 64, 64, 32)  # for tests: the same network with 0.3 M parameters in the MLP
POOLINGS = ("spatial", "haiku")
DEFAULT_POOLING = "spatial"
FLAT_FEATURES_BY_POOLING = {"spatial": 8 * 8 * 48, "haiku": 32 * 8 * 24}
CONV2_IN_BY_POOLING = {"spatial": 18, "haiku": 9}


def check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)} (spatial: the network the take-home "
                         f"meant; haiku: the one its code computes), got {pooling!r}")
    return pooling


def check_widths(widths: tuple[int, ...]) -> tuple[int, ...]:
    widths = tuple(widths)
    if len(widths) != len(HIDDEN_WIDTHS) or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise ValueError(f"widths must be {len(HIDDEN_WIDTHS)} positive hidden-layer sizes like {HIDDEN_WIDTHS}, "
                         f"got {widths}")
    return widths


def mlp_shapes(pooling: str = DEFAULT_POOLING, widths: tuple[int, ...] = HIDDEN_WIDTHS) -> tuple[tuple[int, int], ...]:
    """(in, out) of each linear layer."""
    outs = (*check_widths(widths), NUM_CLASSES)
    return tuple(zip((FLAT_FEATURES_BY_POOLING[check_pooling(pooling)], *outs[:-1]), outs))


MLP_SHAPES = mlp_shapes(DEFAULT_POOLING)
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


class HaikuAvgPool(nn.Module):
    """``hk.AvgPool(window_shape=(2, 2), strides=(2, 2), padding="VALID")`` on NHWC input.

    Haiku pads a short window with leading ones, to (1, 1, 2, 2): the mean of each 2x2
    block of (W, C), rows untouched, a trailing odd column or channel dropped (VALID).
    ``[N, C, H, W] -> [N, C // 2, H, W // 2]``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x[:, : c - c % 2, :, : w - w % 2]
        return x.reshape(n, c // 2, 2, h, w // 2, 2).mean(dim=(2, 5))


def _pool(pooling: str) -> nn.Module:
    return nn.AvgPool2d(2, 2) if pooling == "spatial" else HaikuAvgPool()


def pooling_of(state: dict[str, torch.Tensor]) -> str:
    """Which network a ``Net`` state dict belongs to, read from conv2's input channels."""
    key = f"{CONV_LAYERS[1]}.weight"
    shape = tuple(state[key].shape) if key in state else None
    for pooling, c_in in CONV2_IN_BY_POOLING.items():
        if shape == (48, c_in, 5, 5):
            return pooling
    raise ValueError(f"{key} has shape {shape}, which matches neither network "
                     f"(spatial: (48, 18, 5, 5), haiku: (48, 9, 5, 5))")


def widths_of(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """The hidden widths of a ``Net`` state dict, read from its first four linear weights."""
    keys = [f"{name}.weight" for name in LINEAR_LAYERS[:-1]]
    if not all(k in state and state[k].ndim == 2 for k in keys):
        raise ValueError(f"a Net's state dict has the linear weights {keys}; this one lacks some")
    return tuple(int(state[k].shape[0]) for k in keys)


def haiku_normal_(weight: torch.Tensor, fan_in: int) -> None:
    """Haiku's default weight init in place: truncated normal (+-2 std), std 1/sqrt(fan_in)."""
    std = 1.0 / math.sqrt(fan_in)
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2 * std, b=2 * std)


def haiku_init_(module: nn.Module) -> None:
    """Haiku's default init: truncated normal (+-2 std), std 1/sqrt(fan_in), zero bias."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            haiku_normal_(m.weight, m.weight[0].numel())  # fan-in: in (Linear) or in*kh*kw (conv)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Net(nn.Module):
    """Conv 5x5->18, ReLU, AvgPool, ReLU, Conv 5x5->48, ReLU, AvgPool, Flatten, MLP.

    ``pooling``: "spatial" (pools over H and W) or "haiku" (over W and C, as the take-home's
    code runs); see the module docstring. ``widths``: the four hidden layers' sizes.
    ``init=False`` skips Haiku's init (seconds for 30 M parameters), for a network whose
    weights are loaded next.
    """

    def __init__(self, pooling: str = DEFAULT_POOLING, init: bool = True,
                 widths: tuple[int, ...] = HIDDEN_WIDTHS) -> None:
        super().__init__()
        self.pooling = check_pooling(pooling)
        self.widths = check_widths(widths)
        self.normalize = Normalize()
        self.features = nn.Sequential(
            nn.Conv2d(3, 18, kernel_size=5, padding=2),  # SAME padding for an odd kernel
            nn.ReLU(),
            _pool(pooling),
            nn.ReLU(),
            nn.Conv2d(CONV2_IN_BY_POOLING[pooling], 48, kernel_size=5, padding=2),
            nn.ReLU(),
            _pool(pooling),
            FlattenHWC(),
        )
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(mlp_shapes(pooling, self.widths)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(LINEAR_LAYERS) - 1:
                layers.append(nn.ReLU())
        self.classifier = nn.Sequential(*layers)
        assert [n for n, m in self.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))] == [
            *CONV_LAYERS, *LINEAR_LAYERS], "CONV_LAYERS / LINEAR_LAYERS no longer name Net's layers"
        if init:
            haiku_init_(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(images)))


def build_model(seed: int = 42, pooling: str = DEFAULT_POOLING, widths: tuple[int, ...] = HIDDEN_WIDTHS) -> Net:
    """A freshly initialised network; the init depends only on ``seed`` (and the shape)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Net(pooling, widths=widths)
