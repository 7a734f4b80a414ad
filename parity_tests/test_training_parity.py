"""Same loss, same gradients, same training trajectory: torch vs the JAX reference.

Two float32 trajectories of the same recipe drift apart chaotically: Adam amplifies
round-off (1e-7 after one step, 1e-2 of the weights' movement after 50), and how fast
depends on each CPU's matrix-multiply summation order, so a float32 bound after many
steps measures the machine. The lockstep comparison therefore runs in float64 on both
sides (Lightning's ``precision="64-true"``; ``jax.enable_x64``), where 15 steps (30 for the
network pooled as Haiku runs the take-home's code, whose loss stays flat at first) of both
implementations agree to round-off far below ``FP64_RTOL`` on any CPU, and any real
difference in the recipe shows orders of magnitude above it (``test_lockstep_catches``
plants one bug at a time and checks that it does). Float32, the precision that trains,
is compared over the first steps only, where round-off has not yet grown.

Differences are relative: a loss to the loss; a weight tensor's difference to the distance
it moved from the initial weights, by its largest element in float64 and by its L2 norm
in float32 (where weights whose gradient is within round-off of zero take Adam steps of
either sign, so single elements differ by up to 2 * lr after any step). In float64 those
elements cannot flip: Adam's eps (1e-8) is far above float64 round-off of a gradient.

The trajectories run on the small network (``SMALL_WIDTHS``: the same recipe and code paths);
the one-batch loss and gradients are compared on both full-size networks.
Measured on an AMD EPYC, small network (largest over steps and tensors; margin = bound / it):
    float64, 15 / 30 steps   loss 2.0e-16 / 4.2e-16; EMA 4.3e-12 (2,300) / 3.0e-12; live 2.3e-12 / 1.5e-12
    float64, 3 steps         the unplanted short runs 1.9e-11 (540)
    float32, 3 steps         loss 2.1e-7 / 9.8e-7 (100); EMA 3.7e-3 (8); live 1.1e-4 (270)
    planted bugs, 3 steps    smallest 0.68 (Adam eps, EMA), at least 1e7 times the float64 bound
Full size, one batch, float32 (an Intel Xeon): loss 9.1e-8 (margin 1,100), gradients at 0.0021
of the allowed (475); an AMD EPYC: loss 1.09e-5 (margin 9.2, the "haiku" network). In float32
a full-size comparison after 10 steps read loss 1.4e-4 and live 4.6e-2, and after 50 steps
0.27 of a bias's movement: hence float64 for the long run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import lightning as L
import numpy as np
import optax
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from jax_ref.model import canonical, dense_net
from jax_ref.train import LEARNING_RATE, loss_fn
from jax_ref.train import train as jax_train
from torch_impl.ema import TakeHomeEMA
from torch_impl.lit_module import L2_COEF, LitClassifier, recipe_loss
from torch_impl.model import POOLINGS, SMALL_WIDTHS, build_model, mlp_shapes
from torch_impl.parity.haiku_convert import HaikuTree, torch_to_haiku

pytestmark = pytest.mark.slow  # real-data training or whole training runs: make test-fast skips it

# One forward pass in float32. Measured against the float64 loss: JAX within 1e-7 on both CPUs
# here; torch within 9.1e-8 on an Intel Xeon but 1.09e-5 (the "haiku" network, 30 M weights)
# on an AMD EPYC, whose float32 kernels sum in another order. A recipe bug moves the loss by
# far more (the fp64 lockstep's planted bugs: at least 1e6 times its bound).
LOSS_RTOL = 1e-4
GRAD_ATOL = 1e-5  # gradients are O(1e-2) at init; float32 reductions differ in order
GRAD_RTOL = 1e-3
STEPS = {"spatial": 15, "haiku": 30}  # the small "haiku" network: its loss stays flat for ~20 steps
BATCH = 64
FP64_RTOL = 1e-8  # losses, EMA and live weights over all STEPS in float64
FP32_STEPS = 3
FP32_LOSS_RTOL = 1e-4
FP32_PARAM_RTOL = 3e-2  # of the movement, in L2 norm
MUTANT_STEPS = 3  # every planted bug shows from the first step or two on
# Trajectories run on the small network (the same recipe and code on both sides, 0.3 M MLP
# weights); the one-batch loss and gradients are compared on the full-size networks.
WIDTHS = SMALL_WIDTHS


@dataclass
class Run:
    """One trajectory: the loss per step, and the final EMA and live weights in Haiku layout."""

    losses: np.ndarray
    ema: HaikuTree
    live: HaikuTree


def torch_run(images: np.ndarray, labels: np.ndarray, steps: int, precision: str,
              module_cls: type[LitClassifier] = LitClassifier, ema_cls: type[TakeHomeEMA] = TakeHomeEMA,
              l2_coef: float = L2_COEF, pooling: str = "spatial", widths: tuple[int, ...] = WIDTHS) -> Run:
    """The real training path: Lightning, fused Adam with coupled weight decay, ``TakeHomeEMA``."""

    class LossRecorder(Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.losses.append(float(trainer.callback_metrics["train/loss"]))

    module = module_cls(model=build_model(42, pooling, widths), l2_coef=l2_coef)
    loader = DataLoader(TensorDataset(torch.from_numpy(images), torch.from_numpy(labels)), batch_size=BATCH,
                        shuffle=False)
    rec, ema = LossRecorder(), ema_cls()
    trainer = L.Trainer(max_steps=steps, callbacks=[rec, ema], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
                        precision=precision)
    trainer.fit(module, loader)
    ema_tree = torch_to_haiku(module.model, "canonical")  # after fit the module holds the EMA
    module.load_state_dict(ema.live_state_dict)
    return Run(np.array(rec.losses), ema_tree, torch_to_haiku(module.model, "canonical"))


def jax_run(images: np.ndarray, labels: np.ndarray, steps: int, dtype: type,
            opt: optax.GradientTransformation | None = None, order: list[int] | None = None,
            pooling: str = "spatial", widths: tuple[int, ...] = WIDTHS) -> Run:
    """``jax.grad`` of the whole loss, optax Adam, ``optax.incremental_update``; torch's batches.

    The start is torch's init, converted (for the full-size "haiku" network that is the
    take-home's tree, trained through its verbatim ``hk.Sequential``)."""
    order = list(range(steps)) if order is None else order
    stream = ((images[i * BATCH:(i + 1) * BATCH], labels[i * BATCH:(i + 1) * BATCH]) for i in order)
    params = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), torch_to_haiku(build_model(42, pooling, widths)))
    with jax.enable_x64(dtype == np.float64):
        kwargs = {} if opt is None else {"opt": opt}
        out = jax_train((images, labels), steps, BATCH, params=params, stream=stream, progress=False, **kwargs)
        return Run(out["losses"], canonical(jax.device_get(out["avg_params"])),
                   canonical(jax.device_get(out["params"])))


def differences(a: Run, b: Run, norm: Callable[[np.ndarray], float] = lambda d: np.abs(d).max(),
                pooling: str = "spatial", widths: tuple[int, ...] = WIDTHS) -> dict[str, float]:
    """Largest relative difference of the losses, and of any weight tensor to its movement."""
    start = torch_to_haiku(build_model(42, pooling, widths), "canonical")

    def worst(x: HaikuTree, y: HaikuTree) -> float:
        return max(float(norm(np.asarray(x[m][n], np.float64) - y[m][n])
                         / norm(np.asarray(x[m][n], np.float64) - start[m][n]))
                   for m in start for n in start[m])

    loss = float(np.max(np.abs(a.losses - b.losses) / np.abs(b.losses)))
    return {"loss": loss, "ema": worst(a.ema, b.ema), "live": worst(a.live, b.live)}


def _batch(real_splits, n: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = real_splits["train"]
    return images[:n], labels[:n]


@pytest.mark.parametrize("pooling", POOLINGS)
def test_loss_and_gradients_on_one_batch(real_splits, pooling: str) -> None:
    model = build_model(42, pooling)
    grad_net = copy.deepcopy(model)
    images, labels = _batch(real_splits, 128)
    params = torch_to_haiku(model)  # "haiku": the take-home's tree for its verbatim hk.Sequential
    j_loss, j_grads = jax.value_and_grad(loss_fn)(params, images, labels, dense_net(pooling).apply)
    t_loss = recipe_loss(model, torch.from_numpy(images), torch.from_numpy(labels))
    t_loss.backward()
    np.testing.assert_allclose(t_loss.detach().item(), float(j_loss), rtol=LOSS_RTOL)
    # torch gradients, in Haiku layout through the same converter as the weights
    for p, g in zip(grad_net.parameters(), model.parameters()):
        p.data.copy_(g.grad)
    t_grads = torch_to_haiku(grad_net)
    for m in t_grads:
        for n in t_grads[m]:
            torch.testing.assert_close(torch.from_numpy(t_grads[m][n]), torch.from_numpy(np.array(j_grads[m][n])),
                                       rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=lambda s: f"grad {m}/{n}: {s}")


@pytest.mark.parametrize("pooling", POOLINGS)
def test_float64_lockstep_agrees_to_round_off(real_splits, pooling: str) -> None:
    steps = STEPS[pooling]
    images, labels = _batch(real_splits, steps * BATCH)
    t = torch_run(images, labels, steps, "64-true", pooling=pooling)
    j = jax_run(images, labels, steps, np.float64, pooling=pooling)
    assert t.ema["fc1"]["w"].dtype == j.ema["fc1"]["w"].dtype == np.float64
    assert t.ema["fc1"]["w"].shape == mlp_shapes(pooling, WIDTHS)[0]
    assert j.losses[-5:].mean() < j.losses[0] - 0.05, "the compared trajectory should show learning"
    diff = differences(t, j, pooling=pooling)
    assert max(diff.values()) < FP64_RTOL, f"float64 lockstep over {steps} steps differs: {diff}"


@pytest.mark.parametrize("pooling", POOLINGS)
def test_float32_first_steps_agree(real_splits, pooling: str) -> None:
    images, labels = _batch(real_splits, FP32_STEPS * BATCH)
    t = torch_run(images, labels, FP32_STEPS, "32-true", pooling=pooling)
    j = jax_run(images, labels, FP32_STEPS, np.float32, pooling=pooling)
    diff = differences(t, j, norm=np.linalg.norm, pooling=pooling)
    assert diff["loss"] < FP32_LOSS_RTOL, diff
    assert max(diff["ema"], diff["live"]) < FP32_PARAM_RTOL, diff


class EMAFromStepOne(TakeHomeEMA):
    """Planted bug: the average starts at the weights after the first step (AveragedModel's default)."""

    def on_train_start(self, trainer, pl_module) -> None:
        pass


def adam_without_bias_correction(lr: float = LEARNING_RATE, b1: float = 0.9, b2: float = 0.999,
                                 eps: float = 1e-8) -> optax.GradientTransformation:
    """Planted bug: Adam's moments used without dividing by (1 - beta**t)."""

    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return zeros, zeros

    def update(grads, state, params=None):
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state[0], grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state[1], grads)
        return jax.tree_util.tree_map(lambda m, v: -lr * m / (jnp.sqrt(v) + eps), m, v), (m, v)

    return optax.GradientTransformation(init, update)


# name -> (torch side, JAX side); None runs that side as the recipe. Measured after MUTANT_STEPS
# float64 steps on the small network (loss / EMA / live): EMA start 2e-16 / 0.99 / 1e-11;
# L2 not halved 5.7e-3 / 1.8 / 1.8; Adam eps 1e-7 4.4e-5 / 0.68 / 0.90; no bias correction
# 0.019 / 3.7 / 4.3; swapped batches 0.014 / 2.0 / 2.1.
MUTANTS: dict[str, tuple[Callable | None, Callable | None]] = {
    "EMA starts at params_1": (lambda x, y: torch_run(x, y, MUTANT_STEPS, "64-true", ema_cls=EMAFromStepOne), None),
    "L2 term not halved": (lambda x, y: torch_run(x, y, MUTANT_STEPS, "64-true", l2_coef=2 * L2_COEF), None),
    "Adam eps 1e-7": (None, lambda x, y: jax_run(x, y, MUTANT_STEPS, np.float64,
                                                 opt=optax.adam(LEARNING_RATE, eps=1e-7))),
    "no bias correction": (None, lambda x, y: jax_run(x, y, MUTANT_STEPS, np.float64,
                                                      opt=adam_without_bias_correction())),
    "batches 1 and 2 swapped": (None, lambda x, y: jax_run(x, y, MUTANT_STEPS, np.float64,
                                                           order=[1, 0] + list(range(2, MUTANT_STEPS)))),
}


@pytest.fixture(scope="module")
def short_runs(real_splits) -> tuple[np.ndarray, np.ndarray, Run, Run]:
    images, labels = _batch(real_splits, MUTANT_STEPS * BATCH)
    return (images, labels, torch_run(images, labels, MUTANT_STEPS, "64-true"),
            jax_run(images, labels, MUTANT_STEPS, np.float64))


@pytest.mark.parametrize("bug", list(MUTANTS))
def test_lockstep_catches(short_runs, bug: str) -> None:
    """Each bug the comparison exists for, planted on one side, breaks the float64 bound."""
    images, labels, t, j = short_runs
    assert max(differences(t, j).values()) < FP64_RTOL, "the unplanted short runs must agree"
    torch_side, jax_side = MUTANTS[bug]
    t = torch_side(images, labels) if torch_side else t
    j = jax_side(images, labels) if jax_side else j
    diff = differences(t, j)
    assert max(diff.values()) > 100 * FP64_RTOL, f"{bug}: not detected, {diff}"
