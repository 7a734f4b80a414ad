"""Exported files keep the low-rank factors, match eager, and the check catches a file that does not."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import learnable_images, write_image_folder
from tests.helpers import ROOT
from tests.test_factorize import NETWORKS as OWN_NETWORKS
from tests.test_factorize import inputs as own_inputs
from tests.test_factorize import seeded
from torch_impl import LowRankConfig, factorize_
from torch_impl.artifact import save_compressed
from torch_impl.deploy.export import (
    SUFFIX,
    check_export,
    check_exportable,
    check_exported_outputs,
    export_model,
    factor_check,
    graph_weight_shapes,
    weight_shapes,
)
from torch_impl.factorize import compress_model, dynamic_int8
from torch_impl.lowrank import LowRankLinear
from torch_impl.model import SMALL_WIDTHS, build_model

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")


@pytest.fixture(scope="module")
def low_rank(net_svds):
    return compress_model(net_svds[0], rank_fraction=0.05, svds=net_svds[1])[0].eval()


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return learnable_images(3, seed=2)


# The ONNX exporter's first use in a process compiles and imports for 3-6 s: the slow lane.
@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=pytest.mark.slow), "torch-export"])
def test_export_keeps_factors_and_matches_eager(low_rank, data, tmp_path: Path, fmt: str) -> None:
    path = export_model(low_rank, tmp_path / f"m.{fmt}", fmt)
    report = check_export(low_rank, path, fmt, *data)
    assert report["factor_shapes_kept"] and not report["dense_shapes_present"]
    assert report["logits_within_tolerance"] and report["accuracy_exported"] == report["accuracy_eager"]
    assert report["n_images"] == len(data[1])


def test_the_check_sees_factors_multiplied_back(low_rank) -> None:
    merged = build_model(0, widths=SMALL_WIDTHS).eval()
    for name, m in low_rank.named_modules():
        if isinstance(m, LowRankLinear):
            merged.set_submodule(name, m.merge())
    missing, dense = factor_check(weight_shapes(merged.state_dict().values()), low_rank)
    assert missing and dense  # the factors are gone and [out, in] weights stand in for them
    assert factor_check(weight_shapes(low_rank.state_dict().values()), low_rank) == ({}, {})


def test_onnx_file_holds_the_factor_initializers(low_rank, tmp_path: Path) -> None:
    path = export_model(low_rank, tmp_path / "m.onnx", "onnx")
    shapes = graph_weight_shapes(path, "onnx")
    fc1 = low_rank.classifier[0]
    assert shapes[tuple(sorted((fc1.rank, fc1.in_features)))] >= 1


def test_int8_models_are_refused_in_one_line(low_rank) -> None:
    with pytest.raises(ValueError, match="export its float version and quantize in the target runtime"):
        check_exportable(dynamic_int8(low_rank))


def test_export_script_writes_the_file_and_its_check(low_rank, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("export_script", ROOT / "scripts" / "export.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    main = script.main
    save_compressed(tmp_path / "model", low_rank)
    root = write_image_folder(tmp_path / "cifar", n_train=1, n_test=2)
    report = main([str(tmp_path / "model"), "--format", "torch-export", "--data-dir", str(root),
                   "--cache-dir", str(tmp_path / "cache")])
    check = json.loads((tmp_path / "model" / "model.pt2.check.json").read_text())
    assert check["factor_shapes_kept"] and check["accuracy_exported"] == report["accuracy_eager"]
    assert check["provenance"]["git_commit"] and torch.export.load(str(tmp_path / "model" / "model.pt2"))
    with pytest.raises(SystemExit, match="no model at"):
        main([str(tmp_path / "nothing"), "--format", "onnx"])


@pytest.mark.slow
# MobileNetV3's export takes 14 s here and runs the same exporter code as the others; it is
# exported and checked by docs/results/experiments/own_models.py.
@pytest.mark.parametrize(("name", "fmt"), [*((n, "onnx") for n in OWN_NETWORKS if n != "mobilenet"),
                                           ("mlp", "torch-export"), ("vit", "torch-export")])
def test_a_users_own_network_exports_with_its_factors(tmp_path: Path, name: str, fmt: str) -> None:
    """Networks that are not the take-home's, exported with their own example inputs."""
    model = seeded(OWN_NETWORKS[name][0])
    factorize_(model, LowRankConfig(rank_fraction=0.25))
    x = own_inputs(name)
    path = export_model(model, tmp_path / f"m{SUFFIX[fmt]}", fmt, example=x)
    report = check_exported_outputs(model, path, fmt, x)
    assert report["factor_shapes_kept"] and report["outputs_within_tolerance"]
