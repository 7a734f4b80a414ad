"""scripts/deploy_frontier.py end to end on a small network: report, saved winners, fresh-process reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import load_script, save_trained
from torch_impl.artifact import save_compressed
from torch_impl.factorize import compress_model
from torch_impl.model import SMALL_WIDTHS, build_model

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
pytest.importorskip("openvino", reason="the deploy extra (pip install -e '.[deploy]') is not installed")


@pytest.mark.slow
def test_the_frontier_judges_targets_saves_winners_and_reloads_them(image_tree: Path, cache_dir: Path,
                                                                    tmp_path: Path) -> None:
    dense = build_model(0, widths=SMALL_WIDTHS).eval()
    ckpt = save_trained(tmp_path / "model.pt", dense, n_images=60)
    low = compress_model(dense, rank_fraction=0.25)[0]
    save_compressed(tmp_path / "models" / "low", low, method={"method": "SVD f=0.25", "family": "plain SVD"})
    out = tmp_path / "deploy"
    args = ["--checkpoint", str(ckpt), "--models", str(tmp_path / "models" / "low"), "--data-dir", str(image_tree),
            "--cache-dir", str(cache_dir), "--precisions", "fp32", "int8-static", "--runtimes", "eager",
            "onnxruntime", "--min-rounds", "3", "--max-rounds", "3", "--queries", "10",
            "--out-dir", str(out), "--no-progress-bar"]
    rows = load_script("deploy_frontier").main(args)
    keys = {r["method"] for r in rows}
    assert "dense | fp32 | eager" in keys and "dense copy (A/A) | fp32 | eager" in keys
    assert all(r["test_diff_lo"] <= r["test_diff"] <= r["test_diff_hi"] for r in rows)
    report = (out / "FRONTIER.md").read_text()
    for head in ("## Recommendation", "## Targets (chosen on validation, judged on test)", "## Every timed combination",
                 "## Left out, and why", "## Reloaded in a fresh process"):
        assert head in report
    assert "SVD f=0.25 | int8-static | eager: no form here" in report
    saved = json.loads((out / "frontier.json").read_text())
    assert set(saved["targets"]) == {"A", "B", "C", "D"} and saved["aa_control"]
    deployed = sorted((out / "deployed").iterdir())
    assert deployed and all((d / "deploy.json").is_file() for d in deployed)
    reloaded = [line for line in report.splitlines() if line.startswith(("identical", "DIFFERENT"))]
    assert len(reloaded) == len(deployed) and all(line.startswith("identical") for line in reloaded)
    with pytest.raises(SystemExit, match="frontier.json"):  # a finished run is kept unless --overwrite
        load_script("deploy_frontier").main(args)
    (out / "FRONTIER.md").unlink()  # the report again from frontier.json, nothing re-measured
    assert load_script("deploy_frontier").main(["--out-dir", str(out), "--report-only"]) == []
    assert (out / "FRONTIER.md").read_text() == report
