"""The sweep, latency harness and result files, on a small stand-in model (fast, no timing claims)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import TinyNet, learnable_images
from torch_impl import inference, sweep
from torch_impl.inference import PlainEager, predict
from torch_impl.latency import measure_latency, paired_speedup, reference_speedup
from torch_impl.model import build_model
from torch_impl.plots import mac_break_even_fraction, plot_sweep
from torch_impl.sweep import format_table, run_sweep, write_results

# Chunked prediction against one call: the same products, other batch shapes; measured
# 4.6e-7 on an Intel Xeon (margin 27).
CHUNK_TOL = 1e-5

@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = learnable_images(4, seed=0)
    return torch.from_numpy(images), torch.from_numpy(labels)


class Recorder(nn.Module):
    """Logs its calls into a shared list, to check the order in which models are timed."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__()
        self.name, self.log, self.fc = name, log, nn.Linear(1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.log.append(self.name)
        return images.float().flatten(1)[:, :10]


def test_paired_timing_alternates_the_models(data) -> None:
    log: list[str] = []
    ratio = paired_speedup(Recorder("A", log), Recorder("B", log), data[0], batch_size=8, repeats=3, warmup=1)
    assert ratio > 0
    assert log == ["A", "B"] + ["A", "B"] * 3  # warm-up each, then strictly alternating pairs


def test_chunked_prediction_equals_one_call(data, monkeypatch) -> None:
    net = build_model(0).eval()
    images = data[0][:23]
    with torch.inference_mode():
        whole = net(images)
        monkeypatch.setattr(inference, "MLP_CHUNK", 4)  # so the MLP is chunked apart from the trunk too
        for chunk in (5, 7, 23, None):
            torch.testing.assert_close(predict(net, images, chunk=chunk), whole, rtol=CHUNK_TOL, atol=CHUNK_TOL)
        tiny = TinyNet().eval()  # no normalize/features/classifier: chunked as one model
        torch.testing.assert_close(predict(tiny, images, chunk=5), tiny(images), rtol=CHUNK_TOL, atol=CHUNK_TOL)


def test_plain_eager_reference_runs_the_same_model(data) -> None:
    net = build_model(0).eval()
    images = data[0][:9]
    with torch.inference_mode():
        plain = PlainEager(net)
        assert not hasattr(plain, "features")  # so predict cannot split it into trunk and MLP
        torch.testing.assert_close(predict(plain, images, chunk=None), predict(net, images, chunk=4),
                                   rtol=CHUNK_TOL, atol=CHUNK_TOL)
    assert reference_speedup(net, images, batch_size=9, repeats=1) > 0


def test_measure_latency_reports_each_batch_size(data) -> None:
    res = measure_latency(TinyNet(), data[0], batch_sizes=(40, 1), warmup=1, repeats=3)
    assert [r.batch_size for r in res] == [40, 1]
    assert all(r.per_example_us > 0 and r.iqr_us >= 0 and r.repeats == 3 for r in res)
    assert "channels-last" in res[0].method and res[0].threads == torch.get_num_threads()
    with pytest.raises(ValueError, match="batch size 41 needs 1..40 images"):
        measure_latency(TinyNet(), data[0], batch_sizes=(41,))


def test_sweep_rows_files_and_plots(data, tmp_path: Path) -> None:
    torch.manual_seed(0)
    images, labels = data
    rows = run_sweep(TinyNet(), images, labels, fractions=[1.0, 0.5], batch_sizes=(40, 1), repeats=2,
                     progress=False)
    assert [(r["mode"], r["rank_fraction"]) for r in rows] == [
        ("dense", None), ("factorized", 1.0), ("factorized", 0.5), ("reconstructed", 1.0), ("reconstructed", 0.5)]
    dense = rows[0]
    assert rows[1]["test_acc"] == dense["test_acc"] and rows[3]["test_acc"] == dense["test_acc"]
    assert rows[2]["ranks"] == [5] and rows[2]["total_macs"] == 5 * (3072 + 10)
    assert rows[4]["total_macs"] == dense["total_macs"] == 3072 * 10  # reconstructed costs dense MACs
    assert rows[0]["latency_ratio_paired"] == 1.0 and all(r["latency_ratio_paired"] > 0 for r in rows)
    assert rows[2]["method"] == "factorized f=0.5" and rows[2]["family"] == "factorized" and rows[0]["bytes"] > 0
    csv_path, json_path = write_results(rows, tmp_path, {"provenance": {"seed": 1}})
    assert csv_path.read_text().count("\n") == 6
    assert json.loads(json_path.read_text())["rows"][2]["rank_fraction"] == 0.5
    for png in plot_sweep({"": rows}, tmp_path, (40, 1)):
        assert png.stat().st_size > 10_000
    table = format_table(rows, (40, 1))
    assert "factorized" in table and "paired" in table and "x dense" in table


def test_mac_break_even_fraction() -> None:
    assert 0.5 < mac_break_even_fraction() < 0.67


def test_sweep_evaluates_on_the_device_it_is_given(data, monkeypatch) -> None:
    """Every point's model and images are on ``device`` (the meta device stands in for a GPU);
    the caller's model stays where it was."""
    seen = []
    monkeypatch.setattr(sweep, "model_svds", lambda model: {})  # no arithmetic on the meta device
    monkeypatch.setattr(sweep, "compress_model", lambda model, **kw: (copy.deepcopy(model), []))
    monkeypatch.setattr(sweep, "_point", lambda net, mode, f, images, labels, *a, **k: seen.append(
        (next(net.parameters()).device.type, images.device.type, labels.device.type)) or {})
    model = TinyNet()
    run_sweep(model, *data, fractions=[1.0], modes=["factorized"], progress=False, device="meta")
    assert seen == [("meta", "meta", "meta")] * 2
    assert next(model.parameters()).device.type == "cpu"
