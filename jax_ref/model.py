"""The take-home network in Haiku, dense and low-rank, with its bugs fixed.

Bugs of the original take-home code, and how this reference avoids each:
  1. The L2 term was *subtracted* from the loss: ``loss`` adds it.
  2. The L2 term was not halved: it is ``1e-4 * 0.5 * sum(p**2)``.
  3. Images were cast to ``int8`` before scaling, wrapping pixels > 127 to negative
     values: ``normalize`` casts uint8 to float32 first.
  4. ``x /- mean`` divided by the negated mean (a no-op in intent) instead of subtracting
     it: ``normalize`` computes ``(x / 255 - mean) / std``.
  5. Training used only 20% of the training split: ``jax_ref.train`` uses every image it
     is given (the caller's train split, 90% of CIFAR-10's training images by default).
  A published solution of the take-home also divided by 225 instead of 255 and selected L2
  leaves with ``i/2 != 0`` (true for every index but 0, so it dropped one bias and kept
  the rest): here the divisor is 255 and every parameter enters the L2 term.

Shapes: images uint8 ``[N, 32, 32, 3]`` NHWC; conv kernels HWIO; linear weights
``[in, out]``; ``hk.Flatten`` on NHWC flattens in H, W, C order to ``[N, 3072]``.
Module names are explicit (``conv1``, ``conv2``, ``fc1``..``fc5``; low-rank layers
``fcK_u`` (no bias) then ``fcK_v``) so that parameter trees are easy to read and convert.
"""

from __future__ import annotations

from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
MLP_WIDTHS = (3000, 2000, 2000, 1000, 10)
MLP_IN = (3072, 3000, 2000, 2000, 1000)
FC_NAMES = tuple(f"fc{i + 1}" for i in range(len(MLP_WIDTHS)))


def normalize(images: jnp.ndarray) -> jnp.ndarray:
    """``(x / 255 - mean) / std`` per channel on NHWC images, in JAX's default float type.

    That is float32, or float64 inside ``jax.enable_x64(True)`` (where Haiku's init and
    the parity tests' float64 lockstep run too).
    """
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    x = images.astype(dtype) / 255.0
    return (x - jnp.asarray(CIFAR10_MEAN, dtype)) / jnp.asarray(CIFAR10_STD, dtype)


# 2x2/2 average pooling over H and W. The take-home wrote ``window_shape=(2, 2)``, which
# current Haiku pads with leading ones to (1, 1, 2, 2): it would pool over W and C and
# break the specified 8*8*48 = 3072 flatten. The full NHWC window says what is meant.
POOL = dict(window_shape=(1, 2, 2, 1), strides=(1, 2, 2, 1), padding="VALID")


def _trunk(x: jnp.ndarray) -> jnp.ndarray:
    # Do not alter: the take-home's architecture (Haiku's Conv2D pads SAME by default).
    return hk.Sequential([
        hk.Conv2D(output_channels=18, kernel_shape=(5, 5), name="conv1"), jax.nn.relu,
        hk.AvgPool(**POOL), jax.nn.relu,
        hk.Conv2D(output_channels=48, kernel_shape=(5, 5), name="conv2"), jax.nn.relu,
        hk.AvgPool(**POOL),
        hk.Flatten(),
    ])(x)


def net_fn(images: jnp.ndarray) -> jnp.ndarray:
    """Dense network: logits ``[N, 10]`` for uint8 NHWC images."""
    x = _trunk(normalize(images))
    for i, (name, width) in enumerate(zip(FC_NAMES, MLP_WIDTHS)):
        x = hk.Linear(width, name=name)(x)
        if i < len(MLP_WIDTHS) - 1:
            x = jax.nn.relu(x)
    return x


def low_rank_net_fn(images: jnp.ndarray, ranks: Sequence[int | None]) -> jnp.ndarray:
    """Each linear layer as ``x @ u @ v + b`` (``u [in, r]``, ``v [r, out]``); None keeps it dense."""
    x = _trunk(normalize(images))
    for i, (name, width, rank) in enumerate(zip(FC_NAMES, MLP_WIDTHS, ranks)):
        if rank is None:
            x = hk.Linear(width, name=name)(x)
        else:
            x = hk.Linear(rank, with_bias=False, name=f"{name}_u")(x)
            x = hk.Linear(width, name=f"{name}_v")(x)
        if i < len(MLP_WIDTHS) - 1:
            x = jax.nn.relu(x)
    return x


net = hk.without_apply_rng(hk.transform(net_fn))


def low_rank_net(ranks: Sequence[int | None]) -> hk.Transformed:
    ranks = tuple(ranks)
    if len(ranks) != len(MLP_WIDTHS):
        raise ValueError(f"need one rank per linear layer ({len(MLP_WIDTHS)}), got {len(ranks)}")
    return hk.without_apply_rng(hk.transform(lambda images: low_rank_net_fn(images, ranks)))


def init_params(seed: int = 42) -> hk.Params:
    """Haiku's default init (truncated normal, std 1/sqrt(fan_in), zero bias) from PRNGKey(seed)."""
    return net.init(jax.random.PRNGKey(seed), np.zeros((1, 32, 32, 3), np.uint8))
