"""Per-example inference latency, measured the same way for every model.

The take-home defines inference time as "the average time to compute the prediction for
all examples in the test set": here one call predicts a whole batch (default the 10,000
test images, and batch 1) through ``torch_impl.inference.predict``, after warm-up, under
``torch.inference_mode()``, synchronized on GPU, repeated; the median and inter-quartile
range per example are reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from torch_impl.inference import INFERENCE_METHOD, PlainEager, predict

DEFAULT_BATCH_SIZES = (10_000, 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class LatencyResult:
    batch_size: int
    per_example_us: float  # median over repeats of (call time / batch size)
    iqr_us: float  # inter-quartile range of the same
    repeats: int
    warmup: int
    device: str
    threads: int
    method: str = INFERENCE_METHOD

    def as_dict(self) -> dict:
        return asdict(self)


def default_repeats(batch_size: int) -> tuple[int, int]:
    """(warm-up, repeats): a few for big batches, many for tiny ones, ~same total time."""
    if batch_size >= 1000:
        return 1, 5
    if batch_size >= 32:
        return 5, 30
    return 20, 200


def time_calls(fn: Callable[[], torch.Tensor], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls, synchronized on GPU."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def measure_latency(model: nn.Module, images: torch.Tensor, batch_sizes=DEFAULT_BATCH_SIZES,
                    warmup: int | None = None, repeats: int | None = None,
                    device: str | torch.device | None = None) -> list[LatencyResult]:
    """Per-example latency of ``model`` on the first ``batch_size`` of ``images``, per batch size."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.eval().to(device)
    results = []
    for bs in batch_sizes:
        if not 1 <= bs <= images.shape[0]:
            raise ValueError(f"batch size {bs} needs 1..{images.shape[0]} images")
        batch = images[:bs].to(device)
        w, r = default_repeats(bs)
        w, r = warmup if warmup is not None else w, repeats if repeats is not None else r
        with torch.inference_mode():
            times = time_calls(lambda: predict(model, batch), device, w, r)
        per_ex = [t / bs * 1e6 for t in times]
        q = statistics.quantiles(per_ex, n=4) if len(per_ex) >= 2 else [per_ex[0]] * 3
        results.append(LatencyResult(bs, statistics.median(per_ex), q[2] - q[0], r, w, str(device),
                                     torch.get_num_threads()))
    return results


def paired_speedup(reference: nn.Module, candidate: nn.Module, images: torch.Tensor, batch_size: int,
                   repeats: int = 3, warmup: int = 1, device: str | torch.device | None = None,
                   chunks: tuple[int | None | str, int | None | str] = ("auto", "auto")) -> float:
    """``time(reference) / time(candidate)`` on one batch, the two timed alternately (A B A B ...).

    On a shared machine whose speed drifts by tens of percent over minutes, timing the two
    models minutes apart makes their ratio drift too; alternating puts each pair under the
    same conditions. Returns the median of the per-pair ratios. ``chunks``: ``predict``'s
    ``chunk`` for the reference and the candidate.
    """
    device = torch.device(device) if device is not None else next(reference.parameters()).device
    batch = images[:batch_size].to(device)
    models = [reference.eval().to(device), candidate.eval().to(device)]
    ratios = []
    with torch.inference_mode():
        for m, c in zip(models, chunks):
            time_calls(lambda: predict(m, batch, c), device, warmup, 0)
        for _ in range(repeats):
            ref_t, cand_t = (time_calls(lambda: predict(m, batch, c), device, 0, 1)[0]
                             for m, c in zip(models, chunks))
            ratios.append(ref_t / cand_t)
    return statistics.median(ratios)


def reference_speedup(net: nn.Module, images: torch.Tensor, batch_size: int, repeats: int = 3) -> float:
    """``time(PlainEager(net)) / time(net as predict runs it)``, timed alternately on ``batch_size``."""
    device = next(net.parameters()).device
    return paired_speedup(PlainEager(net), net, images, batch_size, repeats, device=device, chunks=(None, "auto"))
