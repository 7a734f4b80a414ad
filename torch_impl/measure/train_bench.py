"""Training throughput of ways to run the same recipe, measured side by side in one process.

Each way is a set of ``TrainConfig`` overrides. A block fits every way once, in a shuffled
order, through the same ``training.make_trainer`` as a real run (logging, progress bar off,
no checkpoints or validation: those cost the same for every way and happen every 500
steps); a way's figure for the block is the median time of its steps after ``warmup``
steps (torch.compile compiles during the first). Blocks are the independent units: the ratio
of a way to the first one (the baseline) is the trimmed geometric mean over blocks with a
interval (``stats.ratio_interval``), and the baseline runs twice per block, the
second time under another name (the A/A control: its ratio should read 1.0).

The time of one step is measured between the starts of consecutive batches
(``on_train_batch_start``), so it includes the data loader, the forward, the backward,
Adam, the EMA update and the logging: everything a step of a real run pays.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from tqdm.auto import tqdm

from torch_impl.data import CIFAR10DataModule
from torch_impl.ema import TakeHomeEMA
from torch_impl.lit_module import LitClassifier
from torch_impl.measure.stats import ratio_interval
from torch_impl.training import TrainConfig, make_trainer

AA_SUFFIX = " (A/A)"


class StepTimer(Callback):
    """Wall-clock time of each training step, from one batch's start to the next's."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.starts.append(time.perf_counter())

    def step_times(self) -> list[float]:
        return list(np.diff(self.starts))


def step_times(cfg: TrainConfig, dm: CIFAR10DataModule) -> list[float]:
    """Seconds per step of a fresh run of ``cfg`` (``cfg.steps`` steps) on ``dm``'s data."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(replace(cfg, out_dir=tmp, eval_every=10**9, progress_bar=False),
                               [TakeHomeEMA(), timer], checkpoints=False)
        trainer.fit(LitClassifier(init_seed=cfg.seed, pooling=cfg.pooling, compile=cfg.compile), datamodule=dm)
    return timer.step_times()


def bench(ways: dict[str, dict[str, Any]], base: TrainConfig, blocks: int, steps: int, warmup: int,
          seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Images per second of each way (median over blocks) and its ratio to the first way."""
    baseline = next(iter(ways))
    runs = {**ways, baseline + AA_SUFFIX: ways[baseline]}
    dm = CIFAR10DataModule(base.data_dir, base.cache_dir, batch_size=base.batch_size, val_fraction=base.val_fraction,
                           shuffle_seed=base.seed)
    per_block = in_blocks(runs, lambda settings: statistics.median(
        step_times(replace(base, steps=warmup + steps, **settings), dm)[warmup:]), blocks, seed, progress)
    return bench_result(per_block, base.batch_size, blocks, steps, warmup, runs,
                   "blocks of one fresh Lightning fit per way in a shuffled order; per way and block the median "
                   f"step time after {warmup} warm-up steps; speed-up = baseline step time / this way's, 20%-trimmed "
                   "geometric mean over blocks, 95% percentile-bootstrap interval over blocks")


def in_blocks(runs: dict[str, Any], seconds_per_step: Callable[[Any], float], blocks: int, seed: int,
               progress: bool) -> dict[str, list[float]]:
    """``{way: [seconds per step, one per block]}``: each block runs every way once, in a
    shuffled order, ``seconds_per_step(settings)`` timing one run."""
    per_block: dict[str, list[float]] = {n: [] for n in runs}
    rng, order = np.random.default_rng(seed), list(runs)
    bar = tqdm(total=blocks * len(runs), desc="training benchmark", unit="run", disable=not progress)
    for _ in range(blocks):
        for i in rng.permutation(len(order)):
            per_block[order[i]].append(seconds_per_step(runs[order[i]]))
            bar.update()
    bar.close()
    return per_block


def bench_result(per_block: dict[str, list[float]], batch_size: int, blocks: int, steps: int, warmup: int,
            settings: dict[str, dict[str, Any]], method: str) -> dict[str, Any]:
    baseline = next(iter(per_block))
    rows = []
    for name, times in per_block.items():
        r, lo, hi = ratio_interval(per_block[baseline], times)  # baseline time / this way's: speed-up
        rows.append({"way": name, "settings": settings[name], "images_per_s": batch_size / statistics.median(times),
                     "speedup": r, "speedup_lo": lo, "speedup_hi": hi,
                     "ms_per_step_per_block": [1e3 * t for t in times]})
    return {"rows": rows, "blocks": blocks, "steps": steps, "warmup": warmup, "batch_size": batch_size,
            "method": method}


def format_rows(result: dict[str, Any]) -> str:
    lines = [f"{'way':<40}{'images/s':>10}  speed-up over {result['rows'][0]['way']} [95%]"]
    for r in result["rows"]:
        lines.append(f"{r['way']:<40}{r['images_per_s']:>10.0f}  {r['speedup']:.3f}x "
                     f"[{r['speedup_lo']:.3f}, {r['speedup_hi']:.3f}]")
    return "\n".join(lines)
