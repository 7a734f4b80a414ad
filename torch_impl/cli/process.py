"""Process-wide settings a script makes first: CPU float modes, the device, and signals.

- ``flush_denormals``: denormal floats are 10-100x slower on x86; a trained network's dead
  ReLU units leave Adam moments decaying through that range (one fused Adam step measured
  270 ms instead of 16 ms on 2 cores). Flushing them to zero changes no value above 1.2e-38.
  The flag lives in each thread's MXCSR register and worker threads copy it when created,
  so it is set before the first parallel torch operation of the process.
- ``full_fp32``: no TF32 on a GPU, so that torch and JAX do the same arithmetic.
- ``stop_on_signals``: SIGTERM (a scheduler, ``kill``) or SIGINT (Ctrl-C) ends the process with
  status 128 + the signal's number, as a shell reports a process killed by it, after one line
  that names the command continuing the run. Lightning turns SIGTERM inside ``Trainer.fit``
  into a ``SystemExit`` with no code, which ``make`` would take for success; here either
  signal raises ``Interrupted`` (a ``BaseException``, so no ``except Exception`` swallows it).
  SIGKILL cannot be caught: checkpoints, kept points and timing journals make runs resumable.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A signal arrived inside ``stop_on_signals``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_on_signals(how_to_continue: str) -> Iterator[None]:
    """Run the block; SIGTERM or SIGINT during it ends the process with status 128 + signum and
    ``stopped by SIG...: <how_to_continue>`` on stderr. The previous handlers come back after."""
    previous = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    except Interrupted as stop:
        for s in SIGNALS:  # a second signal while shutting down must not interrupt the message
            signal.signal(s, signal.SIG_IGN)
        name = signal.Signals(stop.signum).name
        print(f"stopped by {name} before finishing; {how_to_continue}", file=sys.stderr, flush=True)
        raise SystemExit(128 + stop.signum) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)



def flush_denormals() -> bool:
    """Flush denormals to zero in this process (call first thing); False if the CPU lacks FTZ/DAZ."""
    return torch.set_flush_denormal(True)


def full_fp32() -> None:
    """No TF32 in CUDA matmuls or convolutions (PyTorch's matmul default already; cuDNN's is TF32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; a named device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is visible to torch here; use --device cpu")
    return device
