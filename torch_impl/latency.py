"""Per-example inference latency, timed the same way for every model, in interleaved rounds.

The take-home defines inference time as "the average time to compute the prediction for
all examples in the test set": one call predicts a whole batch (the 10,000 test images,
and batch 1) after warm-up, synchronized on GPU.

A shared machine's speed drifts by tens of percent within minutes, so models timed minutes
apart cannot be compared. Here every model is timed in rounds, and within a round each model
is timed right beside the reference: for every (model, batch size), in a freshly shuffled
order, one call of the reference and one of the model, back to back, which of the two goes
first drawn at random. A round's ratio of the model's time to the reference's is then taken
over a few seconds, not across the whole round. Measured on this 2-core machine at batch
10,000 (the comparison's 25 models, 128 rounds): the log ratio of a model to the reference
timed anywhere in the same round varied by 0.17-0.20 (sd) from round to round, and by 0.07
when the two calls were adjacent (25 rounds of dense beside a deep copy), so one adjacent
pair carries about as much information as 7 rounds of the old kind and costs about 3x one.
Rounds continue until each model's ratio has a 95% bootstrap interval
(``torch_impl.stats.ratio_interval``) no wider than +-``target`` at the first batch size, or
until a time cap, which is reported. Callers add an A/A control (a copy of the reference
timed as another model): its interval should contain 1.0, and ``aa_check`` says loudly when
it does not. Two models other than the reference compare through their per-round ratios to
it (``Rounds.ratio``).

Where a model's weights sit in memory changes its speed by a few percent (page and cache-set
alignment, transparent huge pages), and a placement chosen once would bias every round the
same way: a deep copy of the dense model read 1.018x and then 1.020x dense in two long runs,
with intervals narrowing around the offset. So before every round each model's tensors are
moved to fresh allocations (``relayout``), so that placement varies between rounds instead of
holding for a whole run, the idea of Stabilizer (Curtsinger & Berger, ASPLOS 2013); with it,
the next 128-round run read the copy at 1.011x [0.978, 1.046].

Adjacent whole calls still leave seconds of the host's drift in each pair: a batch-10,000
call lasts 2-4 s, and the same model's calls ranged 2.3-4.5 s within minutes. So on CPU a
pair at a large batch runs the two models interleaved slice by slice: the batch goes through
in slices of ``SLICE_ROWS`` images (one MLP chunk, so each slice runs the kernels a whole
call runs), the two models alternating with the order drawn per slice, and each model's time
is the sum of its slices' (``call.slices``). Measured here (``docs/results/experiments/
slice_noise.py``, 25 rounds of dense beside a deep copy, both ways in each round): per-round
log-ratio sd 0.162 with whole calls, 0.054 interleaved by slice, at the same per-call time
(3.24 and 3.17 s): 9x fewer rounds for the same interval. It also removes an asymmetry of
whole-call pairs: there the reference often follows a call of itself while every other model
follows a different model, and two 35-round runs read dense-sized models at 1.033-1.042x;
interleaved, each slice of either model follows a slice of the other.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.benchmark import Timer
from tqdm.auto import tqdm

from torch_impl.inference import INFERENCE_METHOD, MLP_CHUNK, inference_chunk, predict
from torch_impl.round_journal import RoundJournal
from torch_impl.stats import ratio_interval, relative_halfwidth

DEFAULT_BATCH_SIZES = (10_000, 1)
TARGET_HALFWIDTH = 0.03  # the ratio's 95% interval: +-3% at the first batch size
MIN_ROUNDS, MAX_ROUNDS = 5, 60
SMALL_BATCH = 32  # below this a call lasts ~1 ms: a round times a block of calls instead of one
SMALL_BATCH_CALLS = 20
SLICE_ROWS = MLP_CHUNK  # a large batch's pair alternates models every slice of this many images
PROTOCOL = (f"interleaved rounds (before each round every model's tensors move to fresh allocations; each round "
            f"times every model once per batch size, in a shuffled order, each call right beside one of the "
            f"reference's, the pair's order drawn at random; on CPU, above {SLICE_ROWS} images the pair runs "
            f"interleaved in slices of {SLICE_ROWS} images, the order drawn per slice, each model's time the sum "
            f"of its slices'; "
            f"below batch {SMALL_BATCH}, a block of {SMALL_BATCH_CALLS} calls via torch.utils.benchmark.Timer); "
            "with racing, a model stops being timed once its interval is within the target or it is clearly "
            "off the front; per-example median over rounds; ratio to the reference = 20%-trimmed geometric mean of the "
            "rounds' ratios of adjacent calls, 95% percentile-bootstrap interval over rounds")

Call = Callable[[], object]  # does one batch's work and returns when it is done (synchronized)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (GPU); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def relayout(model: nn.Module) -> None:
    """Move every parameter and buffer of ``model`` to a fresh allocation (same values, same strides).

    The clone is made before the old storage is freed, so the new one lands elsewhere.
    Dynamically quantized linears keep int8 weights in a prepacked object, not a parameter:
    those are repacked from a clone. A reconstructed ``LowRankLinear`` keeps its formed
    product, moved too: keyed by its factors' addresses, it would otherwise be formed again in
    the next timed call (measured: the reconstructed SVD f=0.2 model, the same work as dense,
    read 1.033-1.042x dense in three runs before this)."""
    with torch.no_grad():
        for t in itertools.chain(model.parameters(), model.buffers()):
            t.data = t.data.clone(memory_format=torch.preserve_format)
        for m in model.modules():
            if hasattr(m, "_weight_bias") and hasattr(m, "set_weight_bias"):
                w, b = m._weight_bias()
                m.set_weight_bias(w.clone(), None if b is None else b.clone())
            if hasattr(m, "relocated"):  # a reconstructed LowRankLinear's formed product moves with its factors
                m.relocated()


def torch_calls(model: nn.Module, images: torch.Tensor, batch_sizes: list[int],
                chunk: int | None | str = "auto", slice_rows: int = SLICE_ROWS) -> dict[int, Call]:
    """``{batch size: call}`` running ``model`` through ``predict`` on the first images.

    Each call carries ``call.relayout``, which ``time_interleaved`` runs before every round.
    Where ``predict`` chunks (CPU) and the batch is larger than ``slice_rows``, it also carries
    ``call.slices``: the same images as calls on consecutive slices of ``slice_rows``, which
    ``time_interleaved`` alternates with the reference's."""
    device = next(model.parameters()).device
    model.eval()

    def make(batch: torch.Tensor) -> Call:
        def call() -> None:
            with torch.inference_mode():
                predict(model, batch, chunk)
            sync(device)
        call.relayout = lambda: relayout(model)
        return call

    chunked = (inference_chunk(device) if chunk == "auto" else chunk) is not None  # as predict resolves it

    def sliced(batch: torch.Tensor) -> Call:
        call = make(batch)
        if chunked and batch.shape[0] > slice_rows:
            call.slices = [make(batch[i: i + slice_rows]) for i in range(0, batch.shape[0], slice_rows)]
        return call
    for b in batch_sizes:
        if not 1 <= b <= images.shape[0]:
            raise ValueError(f"batch size {b} needs 1..{images.shape[0]} images")
    return {b: sliced(images[:b].to(device)) for b in batch_sizes}


def _relayout_all(calls: dict[str, dict[int, Call]]) -> None:
    """Run each model's ``relayout`` once (a model's calls for every batch size share one)."""
    for per_batch in calls.values():
        hooks = [c.relayout for c in per_batch.values() if hasattr(c, "relayout")]
        if hooks:
            hooks[0]()


def _time_one(call: Call, batch_size: int) -> float:
    """Seconds per call: one call, or at small batches the mean over a block of calls."""
    if batch_size < SMALL_BATCH:
        # Timer handles the warm-up calls and the thread count; a block's mean is one sample.
        timer = Timer(stmt="call()", globals={"call": call}, num_threads=torch.get_num_threads())
        return timer.timeit(SMALL_BATCH_CALLS).mean
    # One call of seconds: Timer.timeit would first run two untimed calls each time, tripling
    # a round; the warm-up is done once, before the first round, instead.
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _time_pair(reference: Call, call: Call, batch_size: int, rng: np.random.Generator) -> tuple[float, float]:
    """Seconds of the reference's call and of ``call``, timed back to back (order drawn at
    random), or, when both come in the same number of slices, alternating slice by slice."""
    ref_slices, slices = getattr(reference, "slices", None), getattr(call, "slices", None)
    if ref_slices is None or slices is None or len(ref_slices) != len(slices):
        parts = [(reference, call)]
    else:
        parts = list(zip(ref_slices, slices))
    t_ref = t_call = 0.0
    for ref_part, part in parts:  # timed as the whole batch is: a slice of a large batch is one call
        if rng.random() < 0.5:
            t_ref += _time_one(ref_part, batch_size)
            t_call += _time_one(part, batch_size)
        else:
            t_call += _time_one(part, batch_size)
            t_ref += _time_one(ref_part, batch_size)
    return t_ref, t_call


@dataclass
class LatencyStats:
    batch_size: int
    per_example_us: float  # median over rounds
    iqr_us: float
    ratio: float  # trimmed geometric mean of per-round (this model's time / the reference's time)
    ratio_lo: float  # 95% bootstrap interval over rounds
    ratio_hi: float
    rounds: int


@dataclass
class Rounds:
    """What one interleaved timing produced: per model and batch size, the stats.

    ``times[name][b]``: the model's seconds per call, one per round (the reference's: every
    call it made, one beside each other model per round); ``paired[name][b]``: the reference's
    call beside each of them."""

    stats: dict[str, dict[int, LatencyStats]]
    reference: str
    rounds: int
    elapsed_s: float
    stopped_by: str  # "target", "time cap" or "max rounds"
    target_halfwidth: float
    worst_halfwidth: float
    times: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    paired: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    threads: int = field(default_factory=torch.get_num_threads)
    method: str = f"{PROTOCOL}; each call: {INFERENCE_METHOD}"
    retired: dict[str, str] = field(default_factory=dict)  # name -> why racing stopped timing it

    def relative(self, name: str, batch_size: int) -> np.ndarray:
        """Per round, ``name``'s time over the reference's call beside it (the reference: ones)."""
        if name == self.reference:
            return np.ones(self.rounds)
        return np.asarray(self.times[name][batch_size]) / np.asarray(self.paired[name][batch_size])

    def ratio(self, name: str, other: str, batch_size: int) -> tuple[float, float, float]:
        """``name``'s time over ``other``'s (estimate, 95% interval), through each round's ratios
        of both to the reference, over the rounds both were timed in (each list is a prefix)."""
        a, b = self.relative(name, batch_size), self.relative(other, batch_size)
        n = min(len(a), len(b))
        return ratio_interval(a[:n], b[:n])

    def warning(self) -> str | None:
        if self.stopped_by == "target":
            return None
        return (f"WARNING: latency stopped by the {self.stopped_by} after {self.rounds} rounds "
                f"({self.elapsed_s:.0f} s) with the widest interval still timed at "
                f"+-{100 * self.worst_halfwidth:.1f}%, "
                f"not the +-{100 * self.target_halfwidth:.0f}% asked for; raise --time-cap or --max-rounds")

    def summary(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("stats", "times", "paired")}
        return {**out, "warning": self.warning()}


def _retirement(name: str, intervals: dict[str, tuple[float, float, float]], accuracy: dict[str, float],
                target: float, labels: dict[str, str]) -> str | None:
    """Why ``name`` needs no more rounds, or None: its interval is within +-``target``, or it is
    clearly off the front, i.e. some model at least as accurate on validation is faster by more
    than the target even at the ends of both intervals (``name``'s low end above the other's high
    end times 1 + ``target``). Models without an accuracy (controls) retire by their interval only."""
    est, lo, hi = intervals[name]
    if relative_halfwidth(est, lo, hi) <= target:
        return f"interval within +-{100 * target:g}%"
    if name not in accuracy or np.isnan(lo):
        return None
    for other, (_, o_lo, o_hi) in intervals.items():
        if other != name and accuracy.get(other, -1.0) >= accuracy[name] and lo > o_hi * (1 + target):
            return (f"off the front: {labels.get(other, other)} is at least as accurate on validation and faster "
                    f"([{lo:.3f}, {hi:.3f}] against [{o_lo:.3f}, {o_hi:.3f}])")
    return None


def time_interleaved(calls: dict[str, dict[int, Call]], reference: str, target: float = TARGET_HALFWIDTH,
                     min_rounds: int = MIN_ROUNDS, max_rounds: int = MAX_ROUNDS, time_cap_s: float = 1800.0,
                     seed: int = 0, progress: bool = True, journal: RoundJournal | None = None,
                     race: bool = False, accuracy: dict[str, float] | None = None,
                     labels: dict[str, str] | None = None) -> Rounds:
    """Time every model's calls in shuffled rounds, each beside a call of ``reference``, until
    each ratio to it at the first batch size is known to +-``target`` (95%), or the cap.
    ``calls``: name -> batch size -> call (``torch_calls``, or any framework's synchronized
    call). With ``journal``, each finished round is kept there, and an interrupted run's rounds
    found there are continued (``max_rounds`` counts them; ``time_cap_s`` is this run's).

    With ``race``, rounds are spent where they still decide something (as F-race does): after
    ``min_rounds``, a model stops being timed once its interval is within the target, or once it
    is clearly off the front by ``accuracy`` (name -> validation accuracy; see ``_retirement``).
    A retired model's per-round lists then stop growing: every list is a prefix of the rounds,
    so two models still compare over the rounds both were timed in (``Rounds.ratio``).
    ``labels``: names to use for the models in the reasons (default: their keys)."""
    if reference not in calls:
        raise ValueError(f"the reference {reference!r} is not among the timed models {list(calls)}")
    if not 1 <= min_rounds <= max_rounds:
        raise ValueError(f"need 1 <= min_rounds <= max_rounds, got {min_rounds} and {max_rounds}")
    accuracy = dict(accuracy or {})
    batch_sizes = list(calls[reference])
    big = batch_sizes[0]
    others = [n for n in calls if n != reference]
    for name in calls:  # warm-up: one untimed call each (compiles, fills caches, allocates)
        for b in batch_sizes:
            calls[name][b]()
    # Shapes: per (model, batch size) one entry per round the model was timed in (a prefix of
    # the rounds); the reference's own list grows by one per timed model per round.
    times: dict[tuple[str, int], list[float]] = {(n, b): [] for n in calls for b in batch_sizes}
    paired: dict[tuple[str, int], list[float]] = {(n, b): [] for n in others for b in batch_sizes}
    retired: dict[str, str] = {}

    def keep(record: dict) -> None:
        for b in batch_sizes:
            times[reference, b].extend(record["reference"][b])
            for n in record["seconds"]:
                times[n, b].append(record["seconds"][n][b])
                paired[n, b].append(record["paired"][n][b])

    def intervals() -> dict[str, tuple[float, float, float]]:
        out = {reference: (1.0, 1.0, 1.0)}
        for n in others:
            out[n] = (ratio_interval(times[n, big], paired[n, big], seed=seed) if times[n, big]
                      else (float("nan"),) * 3)
        return out

    def retire(rounds_done: int) -> float:
        """Retire what is settled (racing); the widest interval among the models still timed."""
        found = intervals()
        for n in others:
            if n in retired:
                continue
            why = (_retirement(n, found, accuracy, target, labels or {}) if race and rounds_done >= min_rounds
                   else None)
            if why is None and len(times[n, big]) < rounds_done:  # kept rounds: its timing had stopped
                why = "stopped by racing before the run was interrupted"  # (timing it again breaks the prefix)
            if why:
                retired[n] = f"{why}, after {len(times[n, big])} rounds"
        active = [n for n in others if n not in retired]
        return max((relative_halfwidth(*found[n]) for n in active), default=0.0)

    earlier = journal.read()[:max_rounds - 1] if journal is not None else []
    for r in earlier:
        keep(r)
    if journal is not None:
        journal.start(earlier)
        if earlier:
            print(f"continuing from {len(earlier)} timing round(s) an interrupted run kept in {journal.path}")
    rng = np.random.default_rng([seed, len(earlier)])  # a rerun does not repeat the first run's orders
    start, rounds, stopped_by = time.perf_counter(), len(earlier), "max rounds"
    worst = retire(rounds) if earlier else float("inf")
    bar = tqdm(total=max_rounds, initial=rounds, desc="latency rounds", unit="round", disable=not progress)
    while rounds < max_rounds:
        if rounds >= min_rounds and worst <= target:
            stopped_by = "target"
            break
        round_start = time.perf_counter()
        _relayout_all(calls)
        active = [n for n in others if n not in retired]
        record: dict = {"seconds": {n: {} for n in active}, "paired": {n: {} for n in active},
                        "reference": {b: [] for b in batch_sizes}}
        if not others:
            for b in batch_sizes:
                record["reference"][b].append(_time_one(calls[reference][b], b))
        pairs = [(n, b) for n in active for b in batch_sizes]
        for i in rng.permutation(len(pairs)):
            name, b = pairs[i]
            t_ref, t_model = _time_pair(calls[reference][b], calls[name][b], b, rng)
            record["seconds"][name][b], record["paired"][name][b] = t_model, t_ref
            record["reference"][b].append(t_ref)
        keep(record)
        rounds += 1
        if journal is not None:
            journal.append(record)
        bar.update()
        worst = retire(rounds)
        bar.set_postfix_str(f"widest interval +-{100 * worst:.1f}%, {len(others) - len(retired)} timed")
        elapsed, last = time.perf_counter() - start, time.perf_counter() - round_start
        if rounds >= min_rounds and worst <= target:
            stopped_by = "target"
            break
        if elapsed + last > time_cap_s:
            stopped_by = "time cap"
            break
    bar.close()
    # The widest interval reported is over every model but those retired as off the front (whose
    # intervals were not needed to the target; the reasons list them).
    final = intervals()
    worst = max((relative_halfwidth(*final[n]) for n in others
                 if not retired.get(n, "").startswith("off the front")), default=0.0)
    stats = {}
    for name in calls:
        stats[name] = {}
        for b in batch_sizes:
            per_ex = [t / b * 1e6 for t in times[name, b]]
            q = statistics.quantiles(per_ex, n=4) if len(per_ex) >= 2 else [per_ex[0]] * 3
            r = ((1.0, 1.0, 1.0) if name == reference
                 else ratio_interval(times[name, b], paired[name, b], seed=seed))
            n_rounds = rounds if name == reference else len(times[name, b])
            stats[name][b] = LatencyStats(b, statistics.median(per_ex), q[2] - q[0], *r, n_rounds)
    raw = {name: {b: times[name, b] for b in batch_sizes} for name in calls}
    raw_paired = {name: {b: paired[name, b] for b in batch_sizes} for name in others}
    return Rounds(stats, reference, rounds, time.perf_counter() - start, stopped_by, target, worst, raw, raw_paired,
                  retired=retired)


def aa_check(stats: dict[int, LatencyStats]) -> str | None:
    """A loud message when an A/A control's ratio interval excludes 1.0 at any batch size."""
    bad = [s for s in stats.values() if not s.ratio_lo <= 1.0 <= s.ratio_hi]
    if not bad:
        return None
    return ("WARNING: the A/A control (a copy of the dense model timed as another model) reads "
            + "; ".join(f"{s.ratio:.3f}x [{s.ratio_lo:.3f}, {s.ratio_hi:.3f}] at batch {s.batch_size}" for s in bad)
            + ": its interval excludes 1.0, so this run's timing noise is larger than its intervals say; "
              "do not trust ratios this close to 1, and rerun with more rounds (--max-rounds, --time-cap) "
              "on a quieter machine")
