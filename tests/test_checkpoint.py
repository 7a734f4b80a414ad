"""Which images a checkpoint trained on: the comparison refuses one that trained on its validation images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import load_script, save_trained
from torch_impl.checkpoint import check_held_out, load_model, save_model
from torch_impl.data import split_record, split_train_val, trained_indices
from torch_impl.model import SMALL_WIDTHS, build_model

N = 50_000
VALIDATION = split_record(N, 0.1, 0)  # the comparison's split


def test_the_record_names_the_held_out_images() -> None:
    train, val = split_train_val(N, 0.1, 0)
    assert VALIDATION["n_val"] == len(val) == 5000 and len(set(train) | set(val)) == N
    assert set(trained_indices(VALIDATION).tolist()) == set(train.tolist())
    limited = split_record(N, 0.1, 0, train_limit=100)
    assert list(trained_indices(limited)) == list(train[:100])
    assert split_record(N, 0.1, 1)["held_out_sha256"] != VALIDATION["held_out_sha256"]


def test_a_checkpoint_is_accepted_only_when_its_record_keeps_the_validation_images_out() -> None:
    meta = {"metrics": {"split": split_record(N, 0.1, 0)}}
    assert check_held_out("a.pt", meta, VALIDATION) == "recorded"
    assert check_held_out("a.pt", {"metrics": {"split": split_record(N, 0.1, 0, train_limit=9)}}, VALIDATION) \
        == "recorded"
    with pytest.raises(ValueError, match=r"trained on 5,000 of this run's 5,000 validation images .*fraction 0\.0"):
        check_held_out("a.pt", {"metrics": {"split": split_record(N, 0.0, 0)}}, VALIDATION)
    with pytest.raises(ValueError, match=r"trained on [\d,]+ of this run's 5,000 validation images .*split seed 3"):
        check_held_out("a.pt", {"metrics": {"split": split_record(N, 0.1, 3)}}, VALIDATION)
    forged = {"metrics": {"split": {**split_record(N, 0.1, 0), "held_out_sha256": "0" * 64}}}
    with pytest.raises(ValueError, match="cannot reproduce"):
        check_held_out("a.pt", forged, VALIDATION)
    with pytest.raises(ValueError, match="--data-dir it was trained on"):
        check_held_out("a.pt", {"metrics": {"split": split_record(1000, 0.1, 0)}}, VALIDATION)


def test_an_older_checkpoint_is_judged_by_its_training_config_and_an_unknown_one_is_refused() -> None:
    older = {"metrics": {"config": {"val_fraction": 0.1, "train_limit": None}}}  # model.pt before the record
    assert check_held_out("a.pt", older, VALIDATION) == "derived"
    lightning = {"datamodule_hyper_parameters": {"val_fraction": 0.0, "split_seed": 0, "train_limit": None}}
    with pytest.raises(ValueError, match="validation images"):
        check_held_out("a.ckpt", lightning, VALIDATION)
    with pytest.raises(ValueError, match="records no training split.*--assume-held-out"):
        check_held_out("a.pt", {}, VALIDATION)
    assert check_held_out("a.pt", {}, VALIDATION, assume=True) == "assumed"


def test_the_comparison_refuses_a_checkpoint_trained_with_no_validation_split(image_tree: Path, cache_dir: Path,
                                                                              tmp_path: Path, capsys) -> None:
    """One line, before any recipe runs (the image tree holds 60 training images)."""
    net = build_model(0, widths=SMALL_WIDTHS)
    args = ["--data-dir", str(image_tree), "--cache-dir", str(cache_dir), "--out-dir", str(tmp_path / "out")]
    for ckpt, message in ((save_trained(tmp_path / "all.pt", net, n_images=60, val_fraction=0.0),
                           r"trained on 6 of this run's 6 validation images \(trained with --val-fraction 0\.0"),
                          (save_model(tmp_path / "bare.pt", net), "records no training split")):
        with pytest.raises(SystemExit, match=message) as err:
            load_script("compare_methods").main(["--checkpoint", str(ckpt), *args])
        assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
    assert load_model(tmp_path / "all.pt")[1]["metrics"]["split"]["val_fraction"] == 0.0
