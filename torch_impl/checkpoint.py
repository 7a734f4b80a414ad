"""Saving and loading the trained dense network (EMA weights).

Two files are understood: ``model.pt`` written by ``scripts/train.py`` (the plain
``Net`` state dict plus metadata) and any Lightning ``.ckpt`` it wrote, whose
``state_dict`` holds the EMA weights (``TakeHomeEMA`` puts them there) under ``model.``.
Which network a file holds (``Net``'s pooling) is read from its weights' shapes, so a file
never needs a flag to load; ``model.pt`` also records it in its metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torch_impl.artifact import MANIFEST, load_compressed
from torch_impl.data import split_record, split_train_val, trained_indices
from torch_impl.files import atomic_path
from torch_impl.model import Net, pooling_of, widths_of

FORMAT = "svd_compress.model/1"


def save_model(path: str | Path, model: nn.Module, meta: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = {"pooling": getattr(model, "pooling", None), **(meta or {})}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "state_dict": state, "meta": meta}, tmp)
    return path


def first_line(err: BaseException) -> str:
    """An exception's first line (pickle and zip errors can span many), or its type's name."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _from_artifact(path: Path) -> tuple[Net, dict[str, Any]]:
    model, manifest = load_compressed(path)
    if not isinstance(model, Net) or any(row["kind"] != "dense" for row in manifest["layers"]):
        kinds = ", ".join(sorted({r["kind"] for r in manifest["layers"]}))
        raise ValueError(f"{path} holds a compressed model ({kinds} layers); this command starts from a dense "
                         "network: pass the dense model.pt")
    return model, {"manifest": manifest}


def load_model(path: str | Path) -> tuple[Net, dict[str, Any]]:
    """The dense ``Net`` stored at ``path`` (``model.pt``, a Lightning ``.ckpt``, or a model
    directory from ``torch_impl.artifact``) and its metadata. No file is unpickled."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python scripts/train.py` "
                                "(it writes <out-dir>/model.pt) or pass --checkpoint PATH")
    if path.is_dir() or path.name == MANIFEST:
        return _from_artifact(path)
    try:
        # weights_only: tensors and plain containers only, so a crafted file cannot run code here
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle and zip errors come in many types
        raise ValueError(f"{path} is not a readable torch checkpoint of tensors ({first_line(err)}); pass a model.pt "
                         "written by scripts/train.py, a Lightning .ckpt, or a saved model directory") from None
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        state, meta = blob["state_dict"], blob.get("meta", {})
    elif isinstance(blob, dict) and "state_dict" in blob and "pytorch-lightning_version" in blob:
        state = {k[len("model."):]: v for k, v in blob["state_dict"].items() if k.startswith("model.")}
        meta = {"global_step": blob.get("global_step"), "hyper_parameters": blob.get("hyper_parameters"),
                "datamodule_hyper_parameters": blob.get("datamodule_hyper_parameters")}
    else:
        raise ValueError(f"{path} is neither a model.pt from scripts/train.py nor a Lightning checkpoint")
    try:
        net = Net(pooling_of(state), init=False, widths=widths_of(state))
        net.load_state_dict(state)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{path} does not hold this project's network: {err}") from None
    return net.eval(), meta


def _training_split(meta: dict[str, Any], n_images: int) -> tuple[dict[str, Any] | None, str]:
    """The split a checkpoint trained with, and how it is known: "recorded" (``model.pt``'s
    ``split``), "derived" (from the training config of a model.pt or Lightning checkpoint that
    predates the record; the split seed was always 0), or (None, "unknown")."""
    metrics = meta.get("metrics") or {}
    if metrics.get("split"):
        return metrics["split"], "recorded"
    cfg = metrics.get("config") or meta.get("datamodule_hyper_parameters") or {}
    if "val_fraction" in cfg:
        return split_record(n_images, cfg["val_fraction"], cfg.get("split_seed", 0), cfg.get("train_limit")), "derived"
    return None, "unknown"


def check_held_out(path: str | Path, meta: dict[str, Any], validation: dict[str, Any],
                   assume: bool = False) -> str:
    """How the checkpoint at ``path`` is known never to have trained on ``validation``'s images
    (a ``data.split_record``): "recorded", "derived" or, with ``assume``, "assumed". Raises a
    one-line ``ValueError`` when it trained on any of them or when nothing says."""
    trained, how = _training_split(meta, validation["n_images"])
    if trained is None:
        if assume:
            return "assumed"
        raise ValueError(f"{path} records no training split, so its validation images may have been trained on; "
                         "retrain with scripts/train.py (its model.pt records the split), or pass --assume-held-out")
    if trained["n_images"] != validation["n_images"]:
        raise ValueError(f"{path} was trained on a dataset of {trained['n_images']:,} training images, this run "
                         f"reads {validation['n_images']:,}: pass the --data-dir it was trained on")
    again = split_record(trained["n_images"], trained["val_fraction"], trained["seed"], trained.get("train_limit"))
    if again["held_out_sha256"] != trained["held_out_sha256"]:
        raise ValueError(f"{path} records a split this version cannot reproduce (held-out hash differs); retrain it "
                         "with this version's scripts/train.py")
    held_out = split_train_val(validation["n_images"], validation["val_fraction"], validation["seed"])[1]
    overlap = len(np.intersect1d(trained_indices(trained), held_out))
    if overlap:
        raise ValueError(f"{path} was trained on {overlap:,} of this run's {len(held_out):,} validation images "
                         f"(trained with --val-fraction {trained['val_fraction']}, split seed {trained['seed']}); "
                         "choices made on them would be biased: retrain with the default --val-fraction 0.1")
    return how
