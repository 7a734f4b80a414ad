"""The runtime matrix: every model in torch eager, torch.compile and ONNX Runtime, timed together.

"Does low rank speed inference up?" depends on the runtime that runs it. Each model here runs
three ways, all in one set of interleaved rounds (``torch_impl.measure.latency``), and each model's
ratio to dense is taken *within* a runtime (per round, its ratio to eager dense over dense's
in the same runtime: ``latency.Rounds.ratio``), with a bootstrap interval over rounds:
  eager        the project's path (``inference.predict``: the trunk in chunks of 256 images,
               the MLP in chunks of 1,024 rows)
  compile      ``torch.compile`` (Inductor, ``dynamic=True`` so one graph serves every chunk
               and batch size) of the trunk and of the MLP, in the same chunks as eager;
               ``torch._dynamo.explain`` counts graph breaks
  onnxruntime  the file ``torch_impl.deploy.export`` writes, on ONNX Runtime's CPU provider with its
               full graph optimizations and as many intra-op threads as torch uses, in calls of
               ``ORT_CHUNK`` images (its memory arena keeps the largest call's activations for
               the session's life; a run feeding six sessions 10,000 images per call died
               without a traceback on a 24 GB machine, one with calls of 1,000 did not);
               the optimized graph it runs is checked for low-rank factors
               multiplied back (``export.check_export``)
A model that cannot run in a runtime gets no row there, and the reason is recorded: int8 from
``torch.ao`` runs in eager only; its "compile" row is the same weights on torchao's int8 path
(``torch_impl.deploy.int8``) under ``torch.compile``, so the two int8 paths meet in one set of rounds.
An A/A control (``AA_NAME``, a copy of dense, eager) shows the rounds' own noise: its interval
should contain 1.0, and the summary carries a loud warning when it does not.

Each (model, runtime) is also scored on the test images: a runtime that changes a model's
predictions would show here before its speed mattered.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torch_impl.deploy.export import check_export, export_model, runner
from torch_impl.deploy.int8 import as_torchao_int8, has_dynamic_int8
from torch_impl.inference import MLP_CHUNK, _chunked, inference_chunk, predict
from torch_impl.measure.latency import DEFAULT_TIMING, Call, TimingProtocol, aa_check, time_interleaved, torch_calls

RUNTIMES = ("eager", "compile", "onnxruntime")
ORT_CHUNK = 1000
AA_NAME = "dense copy (A/A)"
Predict = Callable[[np.ndarray], np.ndarray]  # uint8 images [N, 32, 32, 3] -> logits [N, 10]


def compiled_predict(model: nn.Module) -> tuple[Predict, int]:
    """``model`` through ``torch.compile`` in ``predict``'s chunks, and its graph-break count."""
    model = model.eval()
    trunk = lambda x: model.features(model.normalize(x))
    trunk_c = torch.compile(trunk, dynamic=True)
    mlp_c = torch.compile(model.classifier, dynamic=True)
    example = torch.zeros(4, 32, 32, 3, dtype=torch.uint8)
    with torch.inference_mode():
        breaks = torch._dynamo.explain(trunk)(example).graph_break_count
        breaks += torch._dynamo.explain(model.classifier)(trunk(example)).graph_break_count
    chunk = inference_chunk(torch.device("cpu"))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            feats = _chunked(trunk_c, torch.from_numpy(x), chunk)
            return _chunked(mlp_c, feats, max(chunk, MLP_CHUNK)).float().numpy()
    return run, breaks


def onnxruntime_predict(model: nn.Module, path: Path, images: np.ndarray, labels: np.ndarray
                        ) -> tuple[Predict, dict[str, Any]]:
    """``model`` exported to ONNX at ``path`` and run by ONNX Runtime, and the export's check."""
    export_model(model, path, "onnx")
    check = check_export(model, path, "onnx", images, labels)
    run = runner(path, "onnx", threads=torch.get_num_threads())
    return lambda x: np.concatenate([run(x[i: i + ORT_CHUNK]) for i in range(0, len(x), ORT_CHUNK)]), check


def allow_recompiles(n_models: int) -> None:
    """Room in dynamo's caches for ``n_models`` compiled models, and a loud failure past it.

    Every model's trunk and MLP share their code objects, so dynamo caches them under one entry
    per code object, guarded on the module and on batch size 1 vs more: past its default limit
    of 8 recompiles it silently runs the rest in eager, and "compile" rows would time eager."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 8 * n_models)
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit,
                                                           64 * n_models)
    torch._dynamo.config.fail_on_recompile_limit_hit = True


def _call(fn: Predict, batch: np.ndarray) -> Call:
    return lambda: fn(batch)


def runtime_matrix(models: dict[str, nn.Module], images: np.ndarray, labels: np.ndarray, work_dir: Path,
                   batch_sizes: list[int], reference: str = "dense", progress: bool = True,
                   protocol: TimingProtocol = DEFAULT_TIMING) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per (model, runtime): test accuracy, per-example medians, the ratio to
    ``reference`` in the same runtime with its 95% interval; and the timing summary."""
    if reference not in models:
        raise ValueError(f"the reference {reference!r} is not among the models {list(models)}")
    allow_recompiles(len(models))
    calls: dict[str, dict[int, Call]] = {}
    rows: dict[str, dict[str, Any]] = {}
    skipped: list[dict[str, str]] = []
    models = {**models, AA_NAME: copy.deepcopy(models[reference])}
    for name, model in models.items():
        model = model.eval()
        fns: dict[str, Predict] = {}
        calls[f"{name}|eager"] = torch_calls(model, torch.from_numpy(images), batch_sizes)
        rows[f"{name}|eager"] = {}
        fns["eager"] = lambda x, m=model: _eager_predict(m, x)
        if name == AA_NAME:
            pass
        elif has_dynamic_int8(model):
            skipped.append({"model": name, "runtime": "onnxruntime", "why": "torch.ao dynamic int8 layers have no "
                            "ONNX export; its compile row is the same weights on torchao's int8 path"})
            fns["compile"], breaks = compiled_predict(as_torchao_int8(model))
            rows[f"{name}|compile"] = {"graph_breaks": breaks, "int8_path": "torchao"}
            calls[f"{name}|compile"] = {b: _call(fns["compile"], images[:b]) for b in batch_sizes}
        else:
            fns["compile"], breaks = compiled_predict(copy.deepcopy(model))
            rows[f"{name}|compile"] = {"graph_breaks": breaks}
            fns["onnxruntime"], check = onnxruntime_predict(model, work_dir / f"{_safe(name)}.onnx", images, labels)
            rows[f"{name}|onnxruntime"] = {"factor_shapes_kept": check["factor_shapes_kept"],
                                           "max_abs_logit_diff": check["max_abs_logit_diff"]}
            for rt in ("compile", "onnxruntime"):
                calls[f"{name}|{rt}"] = {b: _call(fns[rt], images[:b]) for b in batch_sizes}
        for rt, fn in fns.items():
            rows[f"{name}|{rt}"]["test_acc"] = float((fn(images).argmax(1) == labels).mean())
    rounds = time_interleaved(calls, f"{reference}|eager", progress=progress, protocol=protocol)
    out = []
    for key, row in rows.items():
        name, rt = key.split("|")
        ref = f"{reference}|{rt}"
        entry = {"model": name, "runtime": rt, **row}
        for b in batch_sizes:
            entry[f"latency_us_b{b}"] = rounds.stats[key][b].per_example_us
            if ref in rounds.times and key != ref:
                r, lo, hi = rounds.ratio(key, ref, b)
                entry.update({f"ratio_b{b}": r, f"ratio_lo_b{b}": lo, f"ratio_hi_b{b}": hi})
            elif key == ref:
                entry.update({f"ratio_b{b}": 1.0, f"ratio_lo_b{b}": 1.0, f"ratio_hi_b{b}": 1.0})
            if rt != "eager":  # the same model against itself in eager, from the same rounds
                r, lo, hi = rounds.ratio(key, f"{name}|eager", b)
                entry.update({f"vs_eager_b{b}": r, f"vs_eager_lo_b{b}": lo, f"vs_eager_hi_b{b}": hi})
        out.append(entry)
    summary = {**rounds.summary(), "skipped": skipped}
    if warning := aa_check(rounds.stats[f"{AA_NAME}|eager"]):
        summary["aa_warning"] = warning
    return out, summary


def _eager_predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return predict(model, torch.from_numpy(x)).numpy()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name)[:80]
