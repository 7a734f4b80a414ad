"""The take-home's training recipe in JAX/optax, on plain numpy uint8 arrays.

Adam 1e-3; loss = mean softmax cross-entropy + 1e-4 * 0.5 * sum of squared parameters
(the gradient of the whole loss comes from ``jax.grad``); after every step the EMA
``avg = optax.incremental_update(params, avg, 0.001)``, starting from the initial weights.
Either network trains (``pooling``); given parameters say which one they are by their shapes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jax_ref.model import HIDDEN_WIDTHS, dense_net, init_params, native, net, pooling_of, take_home_names, widths_of

LEARNING_RATE = 1e-3
L2_COEF = 1e-4
EMA_STEP = 1e-3

optimizer = optax.adam(LEARNING_RATE)


def l2_term(params: hk.Params) -> jnp.ndarray:
    return L2_COEF * 0.5 * sum(jnp.sum(jnp.square(p)) for p in jax.tree_util.tree_leaves(params))


def loss_fn(params: hk.Params, images: jnp.ndarray, labels: jnp.ndarray,
            apply_fn: Callable = net.apply) -> jnp.ndarray:
    logits = apply_fn(params, images)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return xent + l2_term(params)


@partial(jax.jit, static_argnums=(0, 1))
def _update(opt: optax.GradientTransformation, apply_fn: Callable, params: hk.Params, opt_state: optax.OptState,
            images: jnp.ndarray, labels: jnp.ndarray) -> tuple[hk.Params, optax.OptState, jnp.ndarray]:
    loss, grads = jax.value_and_grad(loss_fn)(params, images, labels, apply_fn)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def update(params: hk.Params, opt_state: optax.OptState, images: jnp.ndarray, labels: jnp.ndarray,
           opt: optax.GradientTransformation = optimizer, apply_fn: Callable = net.apply
           ) -> tuple[hk.Params, optax.OptState, jnp.ndarray]:
    """One jitted step of ``opt`` (the recipe's Adam) on the whole loss."""
    return _update(opt, apply_fn, params, opt_state, images, labels)


@jax.jit
def ema_update(params: hk.Params, avg_params: hk.Params) -> hk.Params:
    return optax.incremental_update(params, avg_params, step_size=EMA_STEP)


# The training loop's step: the update and the EMA in one XLA program, with the parameters,
# Adam's state and the average donated, so XLA updates them in place instead of allocating
# three new 85 MB copies per step (the arithmetic is ``update`` then ``ema_update``).
@partial(jax.jit, static_argnums=(0, 1), donate_argnums=(2, 3, 4))
def _train_step(opt: optax.GradientTransformation, apply_fn: Callable, params: hk.Params, opt_state: optax.OptState,
                avg_params: hk.Params, images: jnp.ndarray, labels: jnp.ndarray
                ) -> tuple[hk.Params, optax.OptState, hk.Params, jnp.ndarray]:
    loss, grads = jax.value_and_grad(loss_fn)(params, images, labels, apply_fn)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, optax.incremental_update(params, avg_params, step_size=EMA_STEP), loss


def _own_buffers(tree: Any) -> Any:
    """A copy with a buffer per leaf: donated arguments may not alias each other (the average
    starts as the parameters; an optimizer's two moments may start as one zeros tree) nor the
    caller's arrays."""
    return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), tree)


@partial(jax.jit, static_argnums=0)
def _predict(apply_fn: Callable, params: hk.Params, images: jnp.ndarray) -> jnp.ndarray:
    return jnp.argmax(apply_fn(params, images), axis=-1)


def accuracy(params: hk.Params, images: np.ndarray, labels: np.ndarray, apply_fn: Callable | None = None,
             chunk: int = 2000) -> float:
    """Top-1 accuracy; without ``apply_fn``, of the dense network the parameters' shapes name."""
    if apply_fn is None:
        pooling = pooling_of(params)
        params, apply_fn = native(params, pooling), dense_net(pooling, widths_of(params)).apply
    correct = 0
    for i in range(0, len(labels), chunk):
        correct += int((np.asarray(_predict(apply_fn, params, images[i: i + chunk])) == labels[i: i + chunk]).sum())
    return correct / len(labels)


def batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> Iterator[tuple]:
    """Endless shuffled batches (a new seeded permutation each epoch; the last partial batch dropped)."""
    if len(labels) < batch_size:
        raise ValueError(f"batch size {batch_size} is larger than the {len(labels)} training images")
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(len(labels))
        for i in range(0, len(perm) - batch_size + 1, batch_size):
            idx = perm[i: i + batch_size]
            yield images[idx], labels[idx]


def train(train_data: tuple[np.ndarray, np.ndarray], steps: int, batch_size: int, seed: int = 42,
          params: hk.Params | None = None, eval_data: tuple[np.ndarray, np.ndarray] | None = None,
          eval_every: int = 0, progress: bool = True, stream: Iterator[tuple] | None = None,
          opt: optax.GradientTransformation = optimizer, pooling: str = "spatial", fused: bool = True,
          widths: tuple[int, ...] = HIDDEN_WIDTHS) -> dict[str, Any]:
    """Run the recipe; returns live and EMA params, the loss per step, and timings.

    ``params`` (either naming) start the run instead of the seeded init, and name the network
    themselves; otherwise ``pooling`` and ``widths`` do. The returned parameters use the network's own names.
    ``stream`` overrides the shuffled batches (the parity tests feed torch's batches);
    ``opt`` overrides the recipe's Adam (the parity tests check that a wrong one is seen).
    ``fused=False`` runs the update and the EMA as two programs without donation, the slower
    way kept to measure the fused one against (``scripts/bench_training.py --framework jax``).
    """
    if params is None:
        params = init_params(seed, pooling, widths)
    else:
        pooling, widths = pooling_of(params), widths_of(params)
        params = native(params, pooling)
    apply_fn = dense_net(pooling, tuple(widths)).apply
    params = _own_buffers(params)
    avg_params = _own_buffers(params)
    opt_state = _own_buffers(opt.init(params))
    losses, evals = [], []
    stream = stream if stream is not None else batches(*train_data, batch_size, seed)
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="jax train", unit="step", disable=not progress)
    for step in bar:
        images, labels = next(stream)
        if fused:
            params, opt_state, avg_params, loss = _train_step(opt, apply_fn, params, opt_state, avg_params,
                                                              images, labels)
        else:
            params, opt_state, loss = update(params, opt_state, images, labels, opt, apply_fn)
            avg_params = ema_update(params, avg_params)
        losses.append(loss)
        if eval_data is not None and eval_every and (step + 1) % eval_every == 0:
            evals.append({"step": step + 1, "val_acc_ema": accuracy(avg_params, *eval_data)})
            bar.set_postfix(val_acc_ema=f"{evals[-1]['val_acc_ema']:.3f}")
    jax.block_until_ready(avg_params)
    train_time = time.perf_counter() - start
    return {"params": params, "avg_params": avg_params, "losses": np.asarray(jax.device_get(losses)),
            "evals": evals, "train_time_s": train_time, "images_per_s": steps * batch_size / train_time}


def save_params(path: str | Path, params: hk.Params) -> Path:
    """Dense parameters as a flat ``.npz`` with keys ``module/name`` under the take-home's names
    (``conv2_d/w``, ..., ``linear_4/b``): the file a take-home user would have written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = take_home_names(params)
    flat = {f"{m}/{n}": np.asarray(v) for m, d in params.items() for n, v in d.items()}
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    try:  # whole or not at all: a kill mid-write never leaves half a file under the real name
        np.savez(tmp, **flat)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
