"""The public API on networks that are not the take-home's: an MLP with LayerNorm and GELU, one
``nn.Linear`` used twice, torchvision's MobileNetV3 and a vision transformer (random weights)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from tests.helpers import ROOT
from torch_impl import LowRankConfig, LowRankLinear, by_name, factorize_, load_compressed, report_table, save_compressed
from torch_impl.artifact import MANIFEST

# Full rank through two float32 factors against the dense layer: round-off of an SVD of a
# weight with entries ~1/sqrt(in); measured 2e-6 on these networks.
FULL_RANK_ATOL = 1e-4


class MyMLP(nn.Module):
    """A user's own network: Linear -> GELU -> LayerNorm -> Linear -> 10-way head."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.norm, self.fc2, self.head = nn.Linear(64, 256), nn.LayerNorm(256), nn.Linear(256, 256), \
            nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(self.norm(nn.functional.gelu(self.fc1(x))))))


class Twice(nn.Module):
    """One ``nn.Linear`` called twice, under two names."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Linear(128, 128)
        self.again = self.block
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.again(torch.relu(self.block(x)))))


def seeded(build, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build().eval()


def vit() -> nn.Module:
    """A small vision transformer; torchvision zero-initializes its head, which would make every
    output 0 and every comparison of outputs empty, so the head gets random weights."""
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                 hidden_dim=64, mlp_dim=128, num_classes=10)
    nn.init.normal_(model.heads.head.weight, std=0.1)
    return model


def mobilenet() -> nn.Module:
    """MobileNetV3-small with its batch-norm statistics taken from a few random batches: at
    torchvision's init its outputs are ~1e-10, too small for any comparison to mean much."""
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    for m in model.classifier:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=m.in_features ** -0.5)
    model.train()
    with torch.no_grad():
        for seed in range(3):
            model(torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(100 + seed)))
    return model


NETWORKS = {"mlp": (MyMLP, (4, 64)), "shared linear": (Twice, (4, 128)), "vit": (vit, (2, 3, 32, 32)),
            "mobilenet": (mobilenet, (2, 3, 64, 64))}


def inputs(name: str) -> torch.Tensor:
    return torch.randn(*NETWORKS[name][1], generator=torch.Generator().manual_seed(1))


def test_a_rank_that_saves_nothing_keeps_the_layer_dense_and_says_why() -> None:
    model = seeded(MyMLP)
    report = factorize_(model, LowRankConfig(rank_fraction=1.0))
    assert [r.rank for r in report] == [None] * 3 and all("r* =" in r.kept for r in report)
    assert not any(isinstance(m, LowRankLinear) for m in model.modules())
    report = factorize_(model, LowRankConfig(rank_fraction=0.1))
    assert [(r.name, r.rank) for r in report] == [("fc1", 6), ("fc2", 25), ("head", 1)]  # LayerNorm: not a linear
    assert report[0].macs_after == 6 * (64 + 256) < report[0].macs_before
    assert "total" in report_table(report) and "fc2" in report_table(report)


def test_filter_fn_and_the_rules_choose_the_layers_and_ranks() -> None:
    model = seeded(MyMLP)
    report = factorize_(model, LowRankConfig(energy=0.5), filter_fn=by_name("fc*"))
    rows = {r.name: r for r in report}
    assert rows["head"].kept == "left out by filter_fn" and isinstance(model.fc1, LowRankLinear)
    budget = seeded(MyMLP)
    report = factorize_(budget, LowRankConfig(mac_budget=20_000), filter_fn=lambda m, name: name != "head")
    assert sum(r.macs_after for r in report if r.name != "head") <= 20_000
    by_time = seeded(MyMLP)  # a cost proportional to MACs: the time rule must choose the MAC rule's ranks
    ns_per_mac = lambda rank, n_in, n_out: 1e-9 * (n_in * n_out if rank is None else rank * (n_in + n_out))
    timed = factorize_(by_time, LowRankConfig(time_budget=20_000e-9, cost=ns_per_mac),
                       filter_fn=lambda m, name: name != "head")
    assert [r.rank for r in timed] == [r.rank for r in report]
    with pytest.raises(ValueError, match="time_budget needs cost="):
        LowRankConfig(time_budget=1e-3)
    with pytest.raises(ValueError, match="exactly one of rank_fraction, energy, mac_budget, time_budget, ranks"):
        LowRankConfig(rank_fraction=0.5, energy=0.9)
    with pytest.raises(ValueError, match=r"ranks names \['nope'\]"):
        factorize_(seeded(MyMLP), LowRankConfig(ranks={"nope": 3}))


def test_data_aware_factors_fit_the_calibration_inputs_at_least_as_well() -> None:
    """Ground truth: on its calibration inputs the data-aware head's outputs (the model's) are the
    best rank-3 affine fit, so no worse than plain SVD's; the rules then read output spectra."""
    x = torch.randn(512, 64, generator=torch.Generator().manual_seed(2))
    dense, plain, aware = seeded(MyMLP), seeded(MyMLP), seeded(MyMLP)
    factorize_(plain, LowRankConfig(ranks={"head": 3}))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(len(x))), batch_size=128)
    factorize_(aware, LowRankConfig(ranks={"head": 3}), calibration=loader)  # a loader's batches, as one
    with torch.no_grad():
        want = dense(x)
        plain_err, aware_err = ((m(x) - want).pow(2).mean().item() for m in (plain, aware))
    assert aware_err <= plain_err and isinstance(aware.head, LowRankLinear)
    report = factorize_(seeded(MyMLP), LowRankConfig(energy=0.9), calibration=x)
    assert all(r.rank is not None or r.kept for r in report)


def test_a_shared_layer_is_replaced_under_every_name() -> None:
    model = seeded(Twice)
    x = inputs("shared linear")
    with torch.no_grad():
        dense = model(x)
    report = factorize_(model, LowRankConfig(ranks={"block": 128}, keep_unprofitable=True))
    assert model.block is model.again and isinstance(model.block, LowRankLinear)
    assert report[0].shared_as == ["again"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), dense, atol=FULL_RANK_ATOL, rtol=0)


def test_attention_output_projections_stay_dense_and_the_transformer_still_runs() -> None:
    model = seeded(vit)
    x = inputs("vit")
    with torch.no_grad():
        dense = model(x)
    report = factorize_(model, LowRankConfig(rank_fraction=1.0, keep_unprofitable=True))
    kept = {r.name for r in report if r.rank is None}
    assert kept == {f"encoder.layers.encoder_layer_{i}.self_attention.out_proj" for i in range(2)}
    assert all("NonDynamicallyQuantizableLinear" in r.kept for r in report if r.rank is None)
    with torch.no_grad():
        torch.testing.assert_close(model(x), dense, atol=FULL_RANK_ATOL, rtol=0)


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("stored", ["all", "changed"])
def test_save_and_load_on_the_users_own_base_model(tmp_path: Path, name: str, stored: str) -> None:
    build = NETWORKS[name][0]
    model = seeded(build)
    factorize_(model, LowRankConfig(rank_fraction=0.25))
    save_compressed(tmp_path / "m", model, base_model=seeded(build) if stored == "changed" else None)
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    assert manifest["module"] is None and manifest["stored"] == stored and manifest["replaced"]
    base = seeded(build) if stored == "changed" else seeded(build, seed=7)  # "all" needs none of the base's weights
    loaded, _ = load_compressed(tmp_path / "m", base_model=base)
    x = inputs(name)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_an_overlay_refuses_a_base_it_does_not_fit(tmp_path: Path) -> None:
    model = seeded(MyMLP)
    factorize_(model, LowRankConfig(rank_fraction=0.25), filter_fn=lambda m, name: name != "head")  # head: the base's
    save_compressed(tmp_path / "m", model, base_model=seeded(MyMLP))
    with pytest.raises(ValueError, match="pass base_model="):
        load_compressed(tmp_path / "m")
    with pytest.raises(ValueError, match="other weights differ from that one's"):
        load_compressed(tmp_path / "m", base_model=seeded(MyMLP, seed=3))
    with pytest.raises(ValueError, match="'fc1' is not a 64->256 linear layer"):
        load_compressed(tmp_path / "m", base_model=seeded(Twice))


def test_a_manifest_that_claims_more_than_its_weights_is_refused_before_allocating(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(8, 4))
    save_compressed(tmp_path / "m", model)
    path = tmp_path / "m" / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["module"]["children"][0].update(in_features=400_000, out_features=400_000)  # 640 GB in float32
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"describes 0.bias as \(400000,\), but model.safetensors holds \(4,\)"):
        load_compressed(tmp_path / "m")


@pytest.mark.slow
def test_a_fresh_process_loads_every_overlay_and_predicts_the_same(tmp_path: Path) -> None:
    """Each network compressed with data-aware factors, saved with only what changed, then loaded
    in another process into a base model built there: bit-identical outputs."""
    for name, (build, _) in NETWORKS.items():
        model, x = seeded(build), inputs(name)
        factorize_(model, LowRankConfig(rank_fraction=0.25), calibration=x)
        save_compressed(tmp_path / name, model, base_model=seeded(build))
        with torch.no_grad():
            torch.save({"x": x, "want": model(x)}, tmp_path / f"{name}.pt")
    code = (f"import sys, torch; sys.path.insert(0, {str(ROOT)!r})\n"
            "from tests.test_factorize import NETWORKS, seeded\n"
            "from torch_impl import load_compressed\n"
            "for name, (build, _) in NETWORKS.items():\n"
            f"    m, _ = load_compressed({str(tmp_path)!r} + '/' + name, base_model=seeded(build))\n"
            f"    io = torch.load({str(tmp_path)!r} + f'/{{name}}.pt')\n"
            "    with torch.no_grad(): assert torch.equal(m(io['x']), io['want']), name\n"
            "    print(name, 'identical')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [w for name in NETWORKS for w in (*name.split(), "identical")]
