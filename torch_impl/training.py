"""Training runs: presets, the Trainer set-up, resume, and the result files."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from torch_impl.checkpoint import first_line, save_model
from torch_impl.data import CIFAR10DataModule
from torch_impl.ema import TakeHomeEMA
from torch_impl.files import write_json
from torch_impl.lit_module import LitClassifier
from torch_impl.model import DEFAULT_POOLING, HIDDEN_WIDTHS, check_pooling
from torch_impl.provenance import device_name, provenance


@dataclass
class TrainConfig:
    steps: int = 3500
    batch_size: int = 128
    seed: int = 42
    pooling: str = DEFAULT_POOLING
    widths: tuple[int, ...] = HIDDEN_WIDTHS  # the MLP's hidden layers (model.SMALL_WIDTHS in tests)
    eval_every: int = 500
    ckpt_every: int = 500
    log_every: int = 50
    data_dir: str | None = None
    cache_dir: str | None = None
    out_dir: str = "runs/train"
    download: bool = False
    val_fraction: float = 0.1
    train_limit: int | None = None
    test_limit: int | None = None
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    progress_bar: bool = True
    preset: str | None = None
    precision: str = "32-true"  # or "bf16-mixed": opt-in, never the default (PRECISIONS)
    compile: bool = False  # torch.compile the training forward and backward (LitClassifier)


# Lightning's precision names this trainer accepts. bf16-mixed runs the forward under CPU
# autocast (bfloat16 matmuls and convolutions, fp32 weights, Adam and EMA); it changes the
# arithmetic, so parity tests and the default stay in 32-true.
PRECISIONS = ("32-true", "bf16-mixed")


# `cpu`: batch 128 and 3,500 steps reach the take-home's accuracy on 2 cores in about
# 12 minutes (measured: 190 ms per step); a larger batch costs more per step than it
# saves in steps, because the EMA (step 0.001) needs a few thousand updates to forget
# the initial weights (0.999**3500 = 3%). `seed`: the take-home's own protocol.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": dict(steps=3500, batch_size=128, eval_every=500, ckpt_every=500),
    "seed": dict(steps=10001, batch_size=1000, eval_every=1000, ckpt_every=1000),
}


def config_from_preset(preset: str | None, **overrides: Any) -> TrainConfig:
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    base = PRESETS.get(preset, {}) if preset else {}
    cfg = TrainConfig(preset=preset, **base)
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    check_pooling(cfg.pooling)
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {cfg.precision!r}; choose one of {', '.join(PRECISIONS)}")
    for name in ("steps", "batch_size", "eval_every", "ckpt_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(cfg, name)}")
    return cfg


def _last_checkpoint(out_dir: Path) -> Path:
    """The newest checkpoint of the run in ``out_dir``: the highest step among its
    ``checkpoints/*.ckpt`` (Lightning names a second "last" ``last-v1.ckpt``; ``own_out_dir``
    keeps a second run out, and this still never resumes from an older file by its name)."""
    found = sorted((out_dir / "checkpoints").glob("*.ckpt"))
    if not found:
        raise FileNotFoundError(f"--resume: no checkpoint in {out_dir / 'checkpoints'}; start without --resume, "
                                "or pass the --out-dir of the interrupted run")
    return max(found, key=lambda p: (_checkpoint_step(p), p.stat().st_mtime))


def _checkpoint_step(path: Path) -> int:
    """The step a Lightning checkpoint was saved at, read without running code from the file
    (``weights_only``) and without reading its tensors (``mmap``)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception as err:  # pickle and zip errors come in many types
        raise ValueError(f"--resume: {path} is not a readable Lightning checkpoint ({first_line(err)}); "
                         "start without --resume, or into a new --out-dir") from None


def make_trainer(cfg: TrainConfig, callbacks: list[Callback], checkpoints: bool = True) -> L.Trainer:
    """The Trainer of a training run (``scripts/bench_training.py`` times the same one)."""
    out_dir = Path(cfg.out_dir)
    if checkpoints:
        callbacks = [*callbacks, ModelCheckpoint(dirpath=out_dir / "checkpoints", every_n_train_steps=cfg.ckpt_every,
                                                 save_top_k=0, save_last=True)]
    return L.Trainer(
        max_steps=cfg.steps, accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
        callbacks=callbacks, logger=CSVLogger(out_dir, name="logs"),
        val_check_interval=cfg.eval_every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        log_every_n_steps=cfg.log_every, enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False, precision=cfg.precision, enable_checkpointing=checkpoints,
    )


def run_training(cfg: TrainConfig, resume: bool = False,
                 callbacks: list[Callback] | None = None) -> dict[str, Any]:
    """Train with the fixed recipe; returns (and writes to ``metrics.json``) the results.

    Call ``torch_impl.cli.process.flush_denormals()`` at the start of the process (as
    ``scripts/train.py`` does): without it the steps slow down 2-3x as training goes on.
    """
    out_dir = Path(cfg.out_dir)
    ckpt_path = _last_checkpoint(out_dir) if resume else None
    source = provenance(seed=cfg.seed)  # taken at the start: the code that actually ran
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = CIFAR10DataModule(cfg.data_dir, cfg.cache_dir, batch_size=cfg.batch_size,
                           val_fraction=cfg.val_fraction, split_seed=0, download=cfg.download,
                           train_limit=cfg.train_limit, test_limit=cfg.test_limit, shuffle_seed=cfg.seed)
    # The data before the Trainer: offline, its one-line error comes before Lightning's set-up
    # lines. Local rank 0 only, as Lightning's own prepare_data call (one download per machine).
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        dm.prepare_data()
    module = LitClassifier(init_seed=cfg.seed, pooling=cfg.pooling, compile=cfg.compile, widths=cfg.widths)
    ema = TakeHomeEMA()
    trainer = make_trainer(cfg, [ema, *(callbacks or [])])
    # mmap: only the step counter is read here, not the 340 MB of tensors Lightning loads next
    start_step = _checkpoint_step(ckpt_path) if ckpt_path else 0
    dm.resume_step = start_step  # the data order picks up where the checkpoint's steps left it
    if start_step >= cfg.steps:  # Lightning would return at once, with no training end to read
        raise ValueError(f"--resume: the run in {out_dir} already trained {start_step} of --steps {cfg.steps}; "
                         "raise --steps to train it further, or start a new --out-dir")
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)  # no code runs from the file
    train_time = time.perf_counter() - start
    steps_done = trainer.global_step
    val = trainer.callback_metrics.get("val/acc")  # read before testing replaces the metrics

    # After fit the module holds the EMA (WeightAveraging copies it in at train end).
    ema_test = trainer.test(module, datamodule=dm, verbose=False)[0]["test/acc"]
    live = LitClassifier(init_seed=cfg.seed, pooling=cfg.pooling, widths=cfg.widths)
    live.load_state_dict(ema.live_state_dict)
    live_test = trainer.test(live, datamodule=dm, verbose=False)[0]["test/acc"]
    wall = time.perf_counter() - start

    metrics = {
        "pooling": cfg.pooling,
        "widths": list(cfg.widths),
        "precision": cfg.precision,
        "compile": cfg.compile,
        "test_acc_ema": ema_test,
        "test_acc_live": live_test,
        "val_acc_ema_last": float(val) if val is not None else None,
        "steps": steps_done,
        "resumed_from_step": start_step,
        "ema_updates": int(ema._average_model.n_averaged) - 1,  # the first "update" copies the init
        "train_time_s": train_time,
        "wall_time_s": wall,
        "images_per_s": (steps_done - start_step) * cfg.batch_size / train_time,
        "n_train": len(dm.numpy_splits()["train"][1]),
        "n_test": len(dm.numpy_splits()["test"][1]),
        "config": asdict(cfg),
        "split": dm.split_record(),  # the comparison checks its validation images against it
        "provenance": {**source, "device": device_name(trainer.strategy.root_device)},
    }
    if trainer.is_global_zero:
        save_model(out_dir / "model.pt", module.model, meta={"metrics": metrics})
        write_json(out_dir / "metrics.json", metrics)
    return metrics
