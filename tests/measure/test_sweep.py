"""The sweep, inference path and result files, on a small stand-in model (fast, no timing claims)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TinyNet, learnable_images
from torch_impl import inference
from torch_impl.inference import PlainEager, predict
from torch_impl.measure import sweep
from torch_impl.measure.latency import TimingProtocol
from torch_impl.measure.plots import mac_break_even_fraction, plot_sweep
from torch_impl.measure.results import Result, write_results
from torch_impl.measure.sweep import format_table, run_sweep
from torch_impl.model import SMALL_WIDTHS, build_model

# Chunked prediction against one call: the same products, other batch shapes; measured
# 4.6e-7 on an Intel Xeon (margin 27).
CHUNK_TOL = 1e-5

@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = learnable_images(4, seed=0)
    return torch.from_numpy(images), torch.from_numpy(labels)


def test_chunked_prediction_equals_one_call(data, monkeypatch) -> None:
    net = build_model(0, widths=SMALL_WIDTHS).eval()
    images = data[0][:23]
    with torch.inference_mode():
        whole = net(images)
        monkeypatch.setattr(inference, "MLP_CHUNK", 4)  # so the MLP is chunked apart from the trunk too
        for chunk in (5, 7, 23, None):
            torch.testing.assert_close(predict(net, images, chunk=chunk), whole, rtol=CHUNK_TOL, atol=CHUNK_TOL)
        tiny = TinyNet().eval()  # no normalize/features/classifier: chunked as one model
        torch.testing.assert_close(predict(tiny, images, chunk=5), tiny(images), rtol=CHUNK_TOL, atol=CHUNK_TOL)


def test_plain_eager_reference_runs_the_same_model(data) -> None:
    net = build_model(0, widths=SMALL_WIDTHS).eval()
    images = data[0][:9]
    with torch.inference_mode():
        plain = PlainEager(net)
        assert not hasattr(plain, "features")  # so predict cannot split it into trunk and MLP
        torch.testing.assert_close(predict(plain, images, chunk=None), predict(net, images, chunk=4),
                                   rtol=CHUNK_TOL, atol=CHUNK_TOL)


def test_sweep_rows_files_and_plots(data, tmp_path: Path) -> None:
    torch.manual_seed(0)
    images, labels = data
    rows, timing = run_sweep(TinyNet(), images, labels, fractions=[1.0, 0.5], batch_sizes=(40, 1), progress=False,
                             yardstick=False, protocol=TimingProtocol(min_rounds=2, max_rounds=2))
    assert [(r["mode"], r["rank_fraction"]) for r in rows] == [
        ("dense", None), ("control", None), ("factorized", 1.0), ("factorized", 0.5), ("reconstructed", 1.0),
        ("reconstructed", 0.5)]
    dense, control = rows[0], rows[1]
    assert control["family"] == "A/A control" and control["test_acc"] == dense["test_acc"]
    assert rows[2]["test_acc"] == dense["test_acc"] and rows[4]["test_acc"] == dense["test_acc"]
    assert rows[2]["test_diff"] == 0 and rows[2]["test_mcnemar_p"] == 1.0  # full rank: the same predictions
    assert rows[3]["ranks"] == [5] and rows[3]["total_macs"] == 5 * (3072 + 10)
    assert rows[5]["total_macs"] == dense["total_macs"] == 3072 * 10  # reconstructed costs dense MACs
    assert rows[5]["weight_bytes_read"] == dense["weight_bytes_read"]  # it reads a dense product
    assert dense["latency_ratio_b40"] == 1.0 and all(r["latency_ratio_b40"] > 0 for r in rows)
    assert all(np.isnan(r["latency_ratio_lo_b1"]) for r in rows[1:])  # two rounds: too few for an interval
    assert all(0 < r["roofline_fraction_b40"] for r in rows)
    assert timing["rounds"]["rounds"] == 2 and timing["aa_control"]["batch_size"] == 40
    assert rows[3]["method"] == "factorized f=0.5" and rows[3]["family"] == "factorized" and rows[0]["bytes"] > 0
    csv_path, json_path = write_results(rows, tmp_path, {"provenance": {"seed": 1}})
    assert csv_path.read_text().count("\n") == 7
    assert json.loads(json_path.read_text())["rows"][3]["rank_fraction"] == 0.5
    for png in plot_sweep({"": rows}, tmp_path, (40, 1)):
        assert png.stat().st_size > 10_000
    table = format_table(rows, (40, 1))
    assert "factorized" in table and "control" in table and "x dense b40 [95%]" in table and "p=1" in table
    worst = Result.from_row(rows[-1])
    worst.measured.update(test_diff=-0.1730, test_diff_lo=-0.1826, test_diff_hi=-0.1632, test_mcnemar_p=4.4e-254)
    line = format_table([rows[0], worst.to_row()], (40, 1)).splitlines()[-2]  # the last: the us/ex footnote
    assert "-17.30 [-18.26, -16.32] p<1e-4  " in line  # the widest difference keeps its column


def test_the_table_prints_a_jax_sweep() -> None:
    """The JAX sweep's rows carry accuracy and per-point times, but no paired statistics."""
    rows = [{"framework": "jax", "mode": "dense", "rank_fraction": None, "test_acc": 0.67, "total_macs": 37e6,
             "latency_us_b10000": 856.6, "latency_us_b1": 5110.2},
            {"framework": "jax", "mode": "factorized", "rank_fraction": 0.5, "test_acc": 0.63, "total_macs": 31e6,
             "latency_us_b10000": 700.1, "latency_us_b1": 4000.0}]
    dense, half = format_table(rows).splitlines()[2:4]
    assert "(reference)" in dense and "n/a (timed alone)" in dense and "856.6" in dense
    assert "63.00  n/a" in half and "(reference)" not in half


def test_mac_break_even_fraction() -> None:
    assert 0.5 < mac_break_even_fraction() < 0.67


def test_sweep_evaluates_on_the_device_it_is_given(data, monkeypatch) -> None:
    """Every point's model and images are on ``device`` (the meta device stands in for a GPU);
    the caller's model stays where it was."""
    seen = []

    class Timed(Exception):
        pass

    def time_into(entries, images, *args, **kwargs):
        seen.extend((next(m.parameters()).device.type, images.device.type) for _, m in entries)
        raise Timed

    monkeypatch.setattr(sweep, "model_svds", lambda model: {})  # no arithmetic on the meta device
    monkeypatch.setattr(sweep, "compress_model", lambda model, **kw: (copy.deepcopy(model), []))
    monkeypatch.setattr(sweep, "evaluate_into", lambda result, net, images, labels, *a, **k: seen.append(
        (next(net.parameters()).device.type, images.device.type, labels.device.type)))
    monkeypatch.setattr(sweep, "time_into", time_into)
    model = TinyNet()
    with pytest.raises(Timed):
        run_sweep(model, *data, fractions=[1.0], modes=["factorized"], progress=False, roofline=False, device="meta")
    assert seen == [("meta", "meta", "meta")] * 2 + [("meta", "meta")] * 3  # dense, control, the point
    assert next(model.parameters()).device.type == "cpu"
