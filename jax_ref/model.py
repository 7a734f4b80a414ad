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

Two networks, by the pooling:
  "spatial": the network the take-home meant, 2x2/2 average pools over H and W; flatten
      8*8*48 = 3,072, 21,257,026 parameters.
  "haiku": the take-home's ``hk.Sequential`` verbatim (``take_home_net_fn``). Its
      ``hk.AvgPool(window_shape=(2, 2), ...)`` on NHWC input gets Haiku's window (1, 1, 2, 2)
      and averages over W and C: conv2 sees 9 channels, flatten 32*8*24 = 6,144,
      30,462,226 parameters. This is what the take-home's code trains.

Shapes: images uint8 ``[N, 32, 32, 3]`` NHWC; conv kernels HWIO; linear weights
``[in, out]``; ``hk.Flatten`` on NHWC flattens in H, W, C order.
Parameter names: the spatial network names its modules (``conv1``, ``conv2``,
``fc1``..``fc5``); the literal one has Haiku's automatic names (``conv2_d``, ``conv2_d_1``,
``linear``, ``linear_1``..``linear_4``), as a take-home user's saved parameters do.
``canonical`` and ``native`` rename between the two. Low-rank networks always use the
explicit names, with layers ``fcK_u`` (no bias) then ``fcK_v``.
``widths``: the four hidden layers' sizes (default ``HIDDEN_WIDTHS``); the tests run the same
code on a small network. The literal take-home code has only the default widths, so a "haiku"
network of other widths is the named one with the take-home's pools.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
HIDDEN_WIDTHS = (3000, 2000, 2000, 1000)
NUM_CLASSES = 10
MLP_WIDTHS = (*HIDDEN_WIDTHS, NUM_CLASSES)
FC_NAMES = tuple(f"fc{i + 1}" for i in range(len(MLP_WIDTHS)))
POOLINGS = ("spatial", "haiku")
FLAT = {"spatial": 3072, "haiku": 6144}
CANONICAL_NAMES = ("conv1", "conv2", *FC_NAMES)
TAKE_HOME_NAMES = ("conv2_d", "conv2_d_1", "linear", *(f"linear_{i}" for i in range(1, len(MLP_WIDTHS))))


def check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    return pooling


def mlp_in(pooling: str = "spatial", widths: Sequence[int] = HIDDEN_WIDTHS) -> tuple[int, ...]:
    return (FLAT[check_pooling(pooling)], *widths)


def mlp_out(widths: Sequence[int] = HIDDEN_WIDTHS) -> tuple[int, ...]:
    return (*widths, NUM_CLASSES)


def widths_of(params: hk.Params) -> tuple[int, ...]:
    """The hidden widths of dense parameters (either naming), from fc1..fc4's weights."""
    tree = canonical(params)
    return tuple(int(np.shape(tree[name]["w"])[1]) for name in FC_NAMES[:-1])


def _rename(params: hk.Params, to: tuple[str, ...]) -> hk.Params:
    """The same tree under the other naming (either one is accepted)."""
    for names in (CANONICAL_NAMES, TAKE_HOME_NAMES):
        if set(params) == set(names):
            return {new: params[old] for old, new in zip(names, to)}
    raise ValueError(f"expected the modules {list(CANONICAL_NAMES)} or {list(TAKE_HOME_NAMES)}, "
                     f"got {sorted(params)}")


def canonical(params: hk.Params) -> hk.Params:
    """Dense parameters under the explicit names ``conv1``..``fc5``."""
    return _rename(params, CANONICAL_NAMES)


def take_home_names(params: hk.Params) -> hk.Params:
    """Dense parameters under Haiku's automatic names, as the take-home's code has them."""
    return _rename(params, TAKE_HOME_NAMES)


def _literal(pooling: str, widths: Sequence[int]) -> bool:
    """Whether ``dense_net`` runs the take-home's code as written (its pools, its widths)."""
    return check_pooling(pooling) == "haiku" and tuple(widths) == HIDDEN_WIDTHS


def native(params: hk.Params, pooling: str) -> hk.Params:
    """Dense parameters under the names ``dense_net(pooling, widths_of(params))`` uses."""
    return take_home_names(params) if _literal(pooling, widths_of(params)) else canonical(params)


def pooling_of(params: hk.Params) -> str:
    """Which network dense parameters (either naming) belong to, read from conv2's kernel."""
    shape = tuple(np.shape(canonical(params)["conv2"]["w"]))
    for pooling, c_in in (("spatial", 18), ("haiku", 9)):
        if shape == (5, 5, c_in, 48):
            return pooling
    raise ValueError(f"conv2's kernel has shape {shape}, which matches neither network "
                     "(spatial: (5, 5, 18, 48), haiku: (5, 5, 9, 48))")


def normalize(images: jnp.ndarray) -> jnp.ndarray:
    """``(x / 255 - mean) / std`` per channel on NHWC images, in JAX's default float type.

    That is float32, or float64 inside ``jax.enable_x64(True)`` (where Haiku's init and
    the parity tests' float64 lockstep run too).
    """
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    x = images.astype(dtype) / 255.0
    return (x - jnp.asarray(CIFAR10_MEAN, dtype)) / jnp.asarray(CIFAR10_STD, dtype)


# "spatial": 2x2/2 average pooling over H and W, the full NHWC window saying what is meant.
# "haiku": the take-home's arguments, which Haiku pads with leading ones to (1, 1, 2, 2).
POOLS = {"spatial": dict(window_shape=(1, 2, 2, 1), strides=(1, 2, 2, 1), padding="VALID"),
         "haiku": dict(window_shape=(2, 2), strides=(2, 2), padding="VALID")}


def take_home_net_fn(images: jnp.ndarray) -> jnp.ndarray:
    """The take-home's ``net_fn`` as written, with only its input bugs fixed (``normalize``)."""
    x = normalize(images)

    # Do NOT alter the architecture definition below.
    net = hk.Sequential([
        hk.Conv2D(output_channels=6*3, kernel_shape=(5,5)),
        jax.nn.relu,
        hk.AvgPool(window_shape=(2,2), strides=(2,2), padding='VALID'),
        jax.nn.relu,
        hk.Conv2D(output_channels=16*3, kernel_shape=(5,5)),
        jax.nn.relu,
        hk.AvgPool(window_shape=(2,2), strides=(2,2), padding='VALID'),
        hk.Flatten(),
        hk.Linear(3000), jax.nn.relu,
        hk.Linear(2000), jax.nn.relu,
        hk.Linear(2000), jax.nn.relu,
        hk.Linear(1000), jax.nn.relu,
        hk.Linear(10),
    ])
    return net(x)


def _trunk(x: jnp.ndarray, pooling: str) -> jnp.ndarray:
    # The take-home's architecture (Haiku's Conv2D pads SAME by default), modules named.
    pool = POOLS[check_pooling(pooling)]
    return hk.Sequential([
        hk.Conv2D(output_channels=18, kernel_shape=(5, 5), name="conv1"), jax.nn.relu,
        hk.AvgPool(**pool), jax.nn.relu,
        hk.Conv2D(output_channels=48, kernel_shape=(5, 5), name="conv2"), jax.nn.relu,
        hk.AvgPool(**pool),
        hk.Flatten(),
    ])(x)


def net_fn(images: jnp.ndarray, pooling: str = "spatial", widths: Sequence[int] = HIDDEN_WIDTHS) -> jnp.ndarray:
    """Dense network: logits ``[N, 10]`` for uint8 NHWC images."""
    if _literal(pooling, widths):
        return take_home_net_fn(images)
    x = _trunk(normalize(images), pooling)
    for i, (name, width) in enumerate(zip(FC_NAMES, mlp_out(widths))):
        x = hk.Linear(width, name=name)(x)
        if i < len(MLP_WIDTHS) - 1:
            x = jax.nn.relu(x)
    return x


def low_rank_net_fn(images: jnp.ndarray, ranks: Sequence[int | None], pooling: str = "spatial",
                    widths: Sequence[int] = HIDDEN_WIDTHS) -> jnp.ndarray:
    """Each linear layer as ``x @ u @ v + b`` (``u [in, r]``, ``v [r, out]``); None keeps it dense."""
    x = _trunk(normalize(images), pooling)
    for i, (name, width, rank) in enumerate(zip(FC_NAMES, mlp_out(widths), ranks)):
        if rank is None:
            x = hk.Linear(width, name=name)(x)
        else:
            x = hk.Linear(rank, with_bias=False, name=f"{name}_u")(x)
            x = hk.Linear(width, name=f"{name}_v")(x)
        if i < len(MLP_WIDTHS) - 1:
            x = jax.nn.relu(x)
    return x


@functools.cache
def dense_net(pooling: str = "spatial", widths: tuple[int, ...] = HIDDEN_WIDTHS) -> hk.Transformed:
    """The dense network (one object per shape, so jit caches its programs); its parameters are
    named as ``native(params, pooling)`` names them."""
    check_pooling(pooling)
    return hk.without_apply_rng(hk.transform(functools.partial(net_fn, pooling=pooling, widths=tuple(widths))))


net = dense_net("spatial")


def low_rank_net(ranks: Sequence[int | None], pooling: str = "spatial",
                 widths: Sequence[int] = HIDDEN_WIDTHS) -> hk.Transformed:
    ranks, widths = tuple(ranks), tuple(widths)
    if len(ranks) != len(MLP_WIDTHS):
        raise ValueError(f"need one rank per linear layer ({len(MLP_WIDTHS)}), got {len(ranks)}")
    check_pooling(pooling)
    return hk.without_apply_rng(hk.transform(lambda images: low_rank_net_fn(images, ranks, pooling, widths)))


def init_params(seed: int = 42, pooling: str = "spatial", widths: Sequence[int] = HIDDEN_WIDTHS) -> hk.Params:
    """Haiku's default init (truncated normal, std 1/sqrt(fan_in), zero bias) from PRNGKey(seed),
    under the network's own names (``native``)."""
    return dense_net(pooling, tuple(widths)).init(jax.random.PRNGKey(seed), np.zeros((1, 32, 32, 3), np.uint8))
