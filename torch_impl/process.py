"""A run ended by a signal exits non-zero and says how to continue it.

A scheduler's preemption or ``kill`` sends SIGTERM; Ctrl-C sends SIGINT. Lightning turns
SIGTERM inside ``Trainer.fit`` into ``SIGTERMException``, a ``SystemExit`` with no code, so
a training run stopped that way would exit with status 0 having written no model, and
``make``, a shell ``&&`` or a job scheduler would take it for success. Inside
``stop_on_signals`` either signal raises ``Interrupted`` instead (a ``BaseException``, so no
``except Exception`` on the way swallows it; Lightning runs its own handler first and then
ours, and re-raises what ours raised), and the block ends the process with status
128 + the signal's number, as a shell reports a process killed by it, after one line that
names the signal and the command that continues the run. SIGKILL cannot be caught: the
runs' checkpoints, kept points and timing journals are what make it resumable.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

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
