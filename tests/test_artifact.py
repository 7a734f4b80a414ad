"""Saved models come back exactly, from the manifest alone; bad files fail in one line; no pickle runs."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import learnable_images
from tests.helpers import ROOT
from torch_impl.artifact import MANIFEST, WEIGHTS, load_compressed, save_compressed
from torch_impl.checkpoint import load_model, save_model
from torch_impl.compare.non_svd import magnitude_prune, prune_channels
from torch_impl.compare.pool_fold import fold_pools
from torch_impl.factorize import compress_model, dynamic_int8
from torch_impl.files import atomic_path, write_json
from torch_impl.inference import predict
from torch_impl.lowrank import LowRankLinear, set_mode
from torch_impl.lowrank_conv import compress_convs
from torch_impl.training import _checkpoint_step


@pytest.fixture(scope="module")
def dense(net_svds):
    return net_svds[0]


@pytest.fixture(scope="module")
def low_rank(net_svds):
    """Every linear layer at a tenth of its rank."""
    return compress_model(net_svds[0], rank_fraction=0.1, svds=net_svds[1])[0].eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.from_numpy(learnable_images(3, seed=4)[0])


def logits(model, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return predict(model.eval(), images)


VARIANTS = {  # name -> (build from the dense and the low-rank model, the layer kinds its manifest lists)
    "dense": (lambda d, lr: d, {"dense"}),
    "low-rank": (lambda d, lr: lr, {"low-rank", "dense"}),  # the convolutions stay dense
    "low-rank, reconstructed": (lambda d, lr: set_mode(copy.deepcopy(lr), "reconstructed"), {"low-rank", "dense"}),
    "low-rank conv": (lambda d, lr: compress_convs(d, {"features.4": 12}), {"low-rank conv", "dense"}),
    "folded pools + low-rank": (lambda d, lr: fold_pools(lr), {"folded pool", "low-rank"}),
    "pruned channels": (lambda d, lr: prune_channels(d, 10, 32), {"pruned channels", "dense"}),
    "magnitude pruned": (lambda d, lr: magnitude_prune(d, 0.5), {"dense"}),
    "low-rank + int8": (lambda d, lr: dynamic_int8(lr), {"int8", "dense"}),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_round_trip_predicts_bit_for_bit(dense, low_rank, images: torch.Tensor, tmp_path: Path,
                                         name: str) -> None:
    build, kinds = VARIANTS[name]
    model = build(dense, low_rank).eval()
    save_compressed(tmp_path / "m", model, method={"name": name}, metrics={"test_acc": 0.5})
    loaded, manifest = load_compressed(tmp_path / "m")
    assert type(loaded) is type(model) and str(loaded) == str(model)
    assert torch.equal(logits(loaded, images), logits(model, images))
    assert {row["kind"] for row in manifest["layers"]} == kinds
    assert manifest["method"] == {"name": name} and manifest["metrics"] == {"test_acc": 0.5}
    assert manifest["base"]["pooling"] == "spatial" and manifest["provenance"]["git_commit"]


def test_low_rank_layers_keep_their_factor_shapes(low_rank, tmp_path: Path) -> None:
    save_compressed(tmp_path / "m", low_rank)
    rows = {r["name"]: r for r in json.loads((tmp_path / "m" / MANIFEST).read_text())["layers"]}
    layers = {n: m for n, m in low_rank.named_modules() if isinstance(m, LowRankLinear)}
    assert len(layers) == 5 and {rows[n]["kind"] for n in layers} == {"low-rank"}
    assert {rows[n]["kind"] for n in ("features.0", "features.4")} == {"dense"}
    for name, m in layers.items():
        assert rows[name]["rank"] == m.rank
        assert rows[name]["shapes"] == {"A": [m.rank, m.in_features], "B": [m.out_features, m.rank]}


@pytest.mark.slow  # a second interpreter: 3-4 s of imports
def test_a_fresh_process_predicts_the_same(low_rank, images: torch.Tensor, tmp_path: Path) -> None:
    model = dynamic_int8(fold_pools(low_rank))
    save_compressed(tmp_path / "m", model)
    np.save(tmp_path / "images.npy", images.numpy())
    code = ("import sys, numpy as np, torch; from torch_impl.artifact import load_compressed; "
            "from torch_impl.inference import predict; m, _ = load_compressed(sys.argv[1]); "
            "x = torch.from_numpy(np.load(sys.argv[2]));\nwith torch.inference_mode(): "
            "np.save(sys.argv[3], predict(m, x).numpy())")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "m"), str(tmp_path / "images.npy"),
                    str(tmp_path / "out.npy")], cwd=ROOT, check=True, timeout=300)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), logits(model, images).numpy())


def test_damaged_or_foreign_directories_fail_in_one_line(low_rank, tmp_path: Path) -> None:
    save_compressed(tmp_path / "m", low_rank)
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        load_compressed(tmp_path)
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    weights = (tmp_path / "m" / WEIGHTS).read_bytes()
    (tmp_path / "m" / WEIGHTS).write_bytes(weights[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="SHA-256 differs"):
        load_compressed(tmp_path / "m")
    (tmp_path / "m" / WEIGHTS).write_bytes(weights)
    manifest["module"]["children"]["classifier"]["children"][0]["type"] = "os.system"
    write_json(tmp_path / "m" / MANIFEST, manifest)
    with pytest.raises(ValueError, match="unknown module type 'os.system'"):
        load_compressed(tmp_path / "m")
    (tmp_path / "m" / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_compressed(tmp_path / "m")


class RunsCode:
    """Unpickling this runs code: it writes the file named in ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_crafted_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    crafted = tmp_path / "model.pt"
    torch.save({"format": "svd_compress.model/1", "state_dict": RunsCode(marker)}, crafted)
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_model(crafted)
    with pytest.raises(ValueError, match="--resume: .* not a readable Lightning checkpoint"):
        _checkpoint_step(crafted)
    assert not marker.exists()
    torch.load(crafted, weights_only=False)  # the control: the file does run code when unpickled
    assert marker.read_text() == "ran"


def test_dense_directories_load_as_checkpoints(dense, low_rank, tmp_path: Path) -> None:
    save_compressed(tmp_path / "dense", dense)
    net, meta = load_model(tmp_path / "dense")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), dense.state_dict().values()))
    save_compressed(tmp_path / "small", low_rank)
    with pytest.raises(ValueError, match="holds a compressed model .*pass the dense model.pt"):
        load_model(tmp_path / "small")
    save_model(tmp_path / "model.pt", dense)  # model.pt still loads, without unpickling code
    assert torch.equal(load_model(tmp_path / "model.pt")[0].classifier[0].weight, dense.classifier[0].weight)


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"good": 1})
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text('{"half')
        raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"good": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
