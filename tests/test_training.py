"""End-to-end training runs on small synthetic image trees: learning, result files, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from tests.conftest import write_image_folder
from torch_impl.checkpoint import check_held_out, load_model
from torch_impl.data import EpochSampler, split_record
from torch_impl.model import HIDDEN_WIDTHS, SMALL_WIDTHS
from torch_impl.training import TrainConfig, config_from_preset, run_training

# Two runs on the same machine; only the summation order inside a shuffled batch differs:
# measured 3.7e-9 on an Intel Xeon (margin 2,700).
RESUME_ATOL = 1e-5
# torch.compile's training forward and backward against eager on one batch: the same
# operations, fused (float32 round-off in another order).
COMPILE_RTOL, COMPILE_ATOL = 1e-4, 1e-6


def small_config(root: Path, tmp: Path, **kw) -> TrainConfig:
    base = dict(steps=40, batch_size=32, eval_every=20, ckpt_every=20, log_every=5, data_dir=str(root),
                cache_dir=str(tmp / "cache"), out_dir=str(tmp / "run"), progress_bar=False,
                accelerator="cpu", devices=1, widths=SMALL_WIDTHS)
    return TrainConfig(**{**base, **kw})


def test_short_run_learns_and_writes_results(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "data", n_train=20, n_test=5)
    metrics = run_training(small_config(root, tmp_path))
    assert metrics["steps"] == 40
    assert metrics["test_acc_live"] > 0.5  # chance is 0.1; the classes differ by colour
    with open(tmp_path / "run" / "logs" / "version_0" / "metrics.csv") as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    print(losses)
    # measured: the last three losses average 0.31 of the first, test accuracy 1.0
    assert len(losses) == 8 and sum(losses[-3:]) / 3 < 0.5 * losses[0]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("test_acc_ema", "test_acc_live", "steps", "wall_time_s", "images_per_s"):
        assert key in saved
    prov = saved["provenance"]
    assert prov["seed"] == 42 and "torch" in prov["versions"] and prov["device"] and prov["git_commit"]
    assert prov["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert saved["config"]["batch_size"] == 32
    net, meta = load_model(tmp_path / "run" / "model.pt")
    assert meta["metrics"]["steps"] == 40
    assert meta["metrics"]["split"] == split_record(200, 0.1, 0)  # 20 per class; the comparison checks it
    assert check_held_out("model.pt", meta, split_record(200, 0.1, 0)) == "recorded"
    images = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    assert net(images).shape == (2, 10)


@pytest.mark.slow
def test_the_literal_network_trains_and_every_file_says_which_it_is(tmp_path: Path) -> None:
    """Full size: the take-home's network as its code runs, 30 M weights, through the real run."""
    root = write_image_folder(tmp_path / "data", n_train=4, n_test=2)
    metrics = run_training(small_config(root, tmp_path, steps=3, eval_every=3, ckpt_every=3, pooling="haiku",
                                        widths=HIDDEN_WIDTHS))
    assert metrics["pooling"] == "haiku" and metrics["config"]["pooling"] == "haiku"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["pooling"] == "haiku"
    net, meta = load_model(tmp_path / "run" / "model.pt")  # no flag: read from the weights
    assert net.pooling == meta["pooling"] == "haiku" and net.classifier[0].in_features == 6144
    assert net.widths == HIDDEN_WIDTHS and sum(p.numel() for p in net.parameters()) == 30_462_226


class CrashAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


class LastLiveWeights(Callback):
    """The live (not averaged) weights after the last step: unlike the EMA in model.pt, which moves
    0.1% a step, they show at once which batches the last steps saw."""

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if trainer.global_step == trainer.max_steps:
            self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


@pytest.mark.slow
def test_resume_mid_epoch_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "data", n_train=4, n_test=1)
    # 40 images in batches of 8: 5 steps an epoch. The crash at step 7 leaves the checkpoint of
    # step 6, one batch into the second epoch; the resumed run must see the uninterrupted run's
    # remaining batches of that epoch and land on its weights.
    kw = dict(steps=8, batch_size=8, ckpt_every=3, eval_every=100, val_fraction=0.0)
    live_full, live_resumed = LastLiveWeights(), LastLiveWeights()
    full = run_training(small_config(root, tmp_path / "a", **kw), callbacks=[live_full])
    cfg = small_config(root, tmp_path / "b", **kw)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(cfg, callbacks=[CrashAt(7)])
    resumed = run_training(cfg, resume=True, callbacks=[live_resumed])
    assert resumed["resumed_from_step"] == 6 and resumed["steps"] == full["steps"] == 8
    assert resumed["ema_updates"] == full["ema_updates"] == 8  # the EMA's count came back too
    a, _ = load_model(tmp_path / "a" / "run" / "model.pt")
    b, _ = load_model(tmp_path / "b" / "run" / "model.pt")
    for (name, pa), pb in [*zip(a.state_dict().items(), b.state_dict().values()),  # the EMA
                           *zip(live_full.state.items(), live_resumed.state.values())]:  # the live weights
        torch.testing.assert_close(pa, pb, rtol=0, atol=RESUME_ATOL, msg=lambda m: f"{name}: {m}")
    with pytest.raises(ValueError, match=r"already trained 8 of --steps 8; raise --steps"):
        run_training(cfg, resume=True)  # a finished run has nothing to resume


def test_epoch_sampler_resumes_where_the_steps_left_it() -> None:
    whole = EpochSampler(23, 4, seed=7)  # 5 batches an epoch, 3 items never used
    stream = []
    for epoch in range(3):
        whole.set_epoch(epoch)
        stream += list(whole)
    assert len(stream) == 3 * 20 and all(len(set(stream[i: i + 20])) == 20 for i in (0, 20, 40))
    assert stream[:20] != stream[20:40]  # a new order each epoch
    for step in (0, 3, 5, 7, 14):
        resumed = EpochSampler(23, 4, seed=7, start_step=step)
        tail = []
        for epoch in range(step // 5, 3):
            resumed.set_epoch(epoch)
            assert len(resumed) == len(list(resumed))
            tail += list(resumed)
        assert tail == stream[step * 4:], step
    assert list(EpochSampler(23, 4, seed=8)) != stream[:20]  # the seed decides the order


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"--resume: no checkpoint in .*checkpoints; start without --resume"):
        run_training(small_config(tmp_path, tmp_path), resume=True)


def test_presets_and_bad_values() -> None:
    assert config_from_preset("seed").batch_size == 1000 and config_from_preset("seed").steps == 10001
    assert config_from_preset("cpu", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown preset"):
        config_from_preset("tpu")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        config_from_preset("cpu", steps=0)
    with pytest.raises(ValueError, match="pooling must be one of spatial, haiku"):
        config_from_preset("cpu", pooling="channels")


class MatmulDtype(Callback):
    """The dtype of the first linear layer's output during training steps."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.seen = set()
        pl_module.model.classifier[0].register_forward_hook(lambda m, i, out: self.seen.add(out.dtype))


@pytest.mark.parametrize("precision, matmul_dtype", [("32-true", torch.float32), ("bf16-mixed", torch.bfloat16)])
def test_precision_reaches_the_matmuls_and_the_weights_stay_fp32(tmp_path: Path, precision: str,
                                                                  matmul_dtype: torch.dtype) -> None:
    root = write_image_folder(tmp_path / "data", n_train=4, n_test=1)
    seen = MatmulDtype()
    metrics = run_training(small_config(root, tmp_path, steps=3, eval_every=3, ckpt_every=3, precision=precision),
                           callbacks=[seen])
    assert seen.seen == {matmul_dtype} and metrics["precision"] == precision
    net, _ = load_model(tmp_path / "run" / "model.pt")
    assert {p.dtype for p in net.parameters()} == {torch.float32}


@pytest.mark.slow
def test_the_compiled_training_forward_computes_the_eager_one() -> None:
    """``LitClassifier(compile=True)``'s training forward runs through torch.compile and gives the
    eager module's loss and gradients (fusion reorders float32 round-off only)."""
    from torch_impl.lit_module import LitClassifier

    torch.manual_seed(0)
    images, labels = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8), torch.randint(0, 10, (16,))
    lit = LitClassifier(compile=True, widths=SMALL_WIDTHS)
    grads = {}
    for way, forward in (("compiled", lit.train_forward), ("eager", lit.model)):
        lit.model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward(images), labels)
        loss.backward()
        grads[way] = (loss.detach(), [p.grad.clone() for p in lit.model.parameters()])
    assert lit._compiled is not None and "_compiled" not in "".join(lit.state_dict())
    torch.testing.assert_close(grads["compiled"][0], grads["eager"][0], rtol=COMPILE_RTOL, atol=0)
    for gc, ge in zip(grads["compiled"][1], grads["eager"][1]):
        torch.testing.assert_close(gc, ge, rtol=COMPILE_RTOL, atol=COMPILE_ATOL)
