"""The JAX reference trained with the same recipe, budget and data as the torch run, and timed.

``jax_ref`` receives the data module's numpy arrays and returns Haiku parameters; this glue
writes them as ``params.npz`` beside a ``metrics.json`` shaped like the torch run's.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch_impl.data import CIFAR10DataModule
from torch_impl.files import write_json
from torch_impl.measure.train_bench import AA_SUFFIX, bench_result, in_blocks
from torch_impl.provenance import provenance
from torch_impl.training import TrainConfig


def run_jax_training(cfg: TrainConfig) -> dict:
    """The same recipe and budget through ``jax_ref`` (fed the data module's numpy arrays)."""
    import jax

    from jax_ref.train import accuracy, save_params, train

    splits = CIFAR10DataModule(cfg.data_dir, cfg.cache_dir, val_fraction=cfg.val_fraction,
                               download=cfg.download, train_limit=cfg.train_limit,
                               test_limit=cfg.test_limit).numpy_splits()
    start = time.perf_counter()
    val = splits["val"] if len(splits["val"][1]) else None
    out = train(splits["train"], cfg.steps, cfg.batch_size, cfg.seed, eval_data=val,
                eval_every=cfg.eval_every, progress=cfg.progress_bar, pooling=cfg.pooling)
    metrics = {
        "framework": "jax",
        "pooling": cfg.pooling,
        "test_acc_ema": accuracy(out["avg_params"], *splits["test"]),
        "test_acc_live": accuracy(out["params"], *splits["test"]),
        "steps": cfg.steps, "train_time_s": out["train_time_s"], "wall_time_s": time.perf_counter() - start,
        "images_per_s": out["images_per_s"], "evals": out["evals"], "final_loss": float(out["losses"][-1]),
        "n_train": len(splits["train"][1]), "n_test": len(splits["test"][1]), "config": asdict(cfg),
        "provenance": provenance(seed=cfg.seed, jax_backend=jax.default_backend(),
                                 jax_device=jax.devices()[0].device_kind),
    }
    save_params(Path(cfg.out_dir) / "params.npz", jax.device_get(out["avg_params"]))
    write_json(Path(cfg.out_dir) / "metrics.json", metrics)
    return metrics


def bench_jax(base: TrainConfig, blocks: int, steps: int, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """The JAX reference's training loop, its fused step (update and EMA in one donated
    program) against the two separate programs, same blocks and statistics as ``bench``.
    Each way is compiled once before the blocks (XLA caches it for the process)."""
    from jax_ref.train import train

    dm = CIFAR10DataModule(base.data_dir, base.cache_dir, val_fraction=base.val_fraction)
    data = dm.numpy_splits()["train"]
    runs = {"jax two programs": False, "jax fused, donated": True, "jax two programs" + AA_SUFFIX: False}
    for fused in (False, True):
        train(data, 2, base.batch_size, base.seed, progress=False, fused=fused)
    per_block = in_blocks(runs, lambda fused: train(data, steps, base.batch_size, base.seed, progress=False,
                                                     fused=fused)["train_time_s"] / steps, blocks, seed, progress)
    return bench_result(per_block, base.batch_size, blocks, steps, 0, {n: {"fused": f} for n, f in runs.items()},
                   "blocks of one jax_ref.train call per way in a shuffled order (compiled beforehand); per way and "
                   "block the mean step time; speed-up = baseline step time / this way's, 20%-trimmed geometric "
                   "mean over blocks, 95% percentile-bootstrap interval over blocks")
