"""How a batch of images runs through a model: the one inference path everything evaluates with.

The uint8 NHWC input reaches the convolutions as a channels-last view (no copy), and on
CPU large batches go through in chunks: the convolution trunk in chunks of
``INFERENCE_CHUNK`` images, which keeps activations in cache, and the MLP in chunks of
``MLP_CHUNK`` rows, which reads each weight once per more rows. On 2 CPU cores the trunk
measured 263 us/example at batch 10,000 in NCHW against 70 in channels-last chunks of 256,
and the MLP 412-450 us/example in chunks of 256 against 297-309 in chunks of 1,024;
``scripts/bench_inference.py`` re-measures both. A GPU runs whole batches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

INFERENCE_CHUNK = 256  # CPU only: a GPU is fastest with the whole batch in one call
MLP_CHUNK = 1024  # CPU only: rows per MLP call when the trunk and the MLP run apart
INFERENCE_METHOD = (f"torch eager, inference_mode, uint8 NHWC input as a channels-last view; on CPU "
                    f"the conv trunk runs in chunks of {INFERENCE_CHUNK} images and the MLP in chunks of "
                    f"{MLP_CHUNK} rows, denormals flushed; on GPU whole batches in full fp32 (no TF32)")


def inference_chunk(device: torch.device) -> int | None:
    """Images per model call for a large batch on ``device`` (None: the whole batch)."""
    return INFERENCE_CHUNK if device.type == "cpu" else None


def _chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int | None) -> torch.Tensor:
    if chunk is None or x.shape[0] <= chunk:
        return fn(x)
    return torch.cat([fn(x[i: i + chunk]) for i in range(0, x.shape[0], chunk)])


def predict(model: nn.Module, images: torch.Tensor, chunk: int | None | str = "auto") -> torch.Tensor:
    """Logits for ``images`` (uint8 ``[N, 32, 32, 3]``), in chunks on CPU; call under inference_mode.

    A model laid out as ``Net`` (``normalize``, ``features``, ``classifier``; compressed copies
    keep it) runs its trunk and its MLP in chunks of different sizes (see the module's doc);
    any other model runs in chunks of ``chunk`` images.
    """
    if chunk == "auto":
        chunk = inference_chunk(images.device)
    if chunk is not None and all(hasattr(model, a) for a in ("normalize", "features", "classifier")):
        features = _chunked(lambda x: model.features(model.normalize(x)), images, chunk)
        return _chunked(model.classifier, features, max(chunk, MLP_CHUNK))
    return _chunked(model, images, chunk)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``images`` through ``predict``."""
    with torch.inference_mode():
        return float((predict(model, images).argmax(1) == labels).float().mean())


class PlainEager(nn.Module):
    """A ``Net`` run the plain way: NCHW-contiguous activations, no chunking (pass ``chunk=None``).

    The way most code would run the network, kept as a yardstick: the machine's speed drifts
    between days (the same code has measured 1.3-2x apart), so the sweep
    (``sweep.run_sweep(yardstick=True)``) times it side by side with ``predict``'s way, and
    latencies from different days can be put on one scale.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = self.net
        return n.classifier(n.features(n.normalize(images).contiguous()))
