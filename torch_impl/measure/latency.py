"""Per-example inference latency, timed the same way for every model, in interleaved rounds.

The take-home's definition: one call predicts a whole batch (the 10,000 test images, and
batch 1) after warm-up, synchronized on a GPU; its time over the batch size is the latency.
The rules, each with the measurement that set it (the runs: ``docs/results/experiments/``):

- **Pairs.** A shared machine's speed drifts by tens of percent within minutes, so within a
  round each model is timed right beside a call of the reference (the dense model), the pair's
  order drawn at random, and only the ratio of the two is used: adjacent calls cut the
  round-to-round sd of the log ratio at batch 10,000 from 0.17-0.20 to 0.07.
- **Slices.** On CPU, above ``SLICE_ROWS`` images the two calls of a pair run interleaved slice
  by slice (the order drawn per slice), each model's time the sum of its slices': sd 0.054
  against 0.162 for whole calls at the same cost, so 9x fewer rounds for one interval.
- **Relayout.** Before every round each model's tensors move to fresh allocations
  (``relayout``; Stabilizer, Curtsinger & Berger 2013), so that where weights sit in memory
  varies between rounds instead of biasing a whole run (a fixed placement read a deep copy of
  dense at 1.018-1.020x, intervals narrowing around the offset).
- **Stopping.** Rounds continue until every ratio's 95% interval (``stats.ratio_interval``, at a
  level that keeps its coverage under this rule) is within +-``target`` at the first batch size, or the round or
  time cap of the ``TimingProtocol``, which is reported.
- **Racing** (optional): after ``min_rounds`` a model stops being timed once its interval is
  within the target, or once a model at least as accurate on validation is faster even at the
  ends of both intervals (``_retirement``).
- **Queries.** Below ``SMALL_BATCH`` a round times ``queries`` single calls of the model, each
  right beside one of the reference's (order drawn per query), as a server answers one request
  at a time (MLPerf's SingleStream): the round's time is the queries' median (p50), and their
  90th percentile (p90) is kept beside it, each with its ratio to the reference's.
- **Control.** Callers add an A/A control (a copy of the reference timed as another model);
  ``aa_check`` says loudly when its interval excludes 1.0.
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
from tqdm.auto import tqdm

from torch_impl.inference import INFERENCE_METHOD, MLP_CHUNK, inference_chunk, predict
from torch_impl.measure.round_journal import RoundJournal
from torch_impl.measure.stats import MIN_INTERVAL_ROUNDS, RATIO_LEVEL, fmt_interval, ratio_interval, relative_halfwidth

DEFAULT_BATCH_SIZES = (10_000, 1)
TARGET_HALFWIDTH = 0.03  # the ratio's 95% interval: +-3% at the first batch size
MIN_ROUNDS, MAX_ROUNDS = 5, 60
TIME_CAP_S = 1800.0
SMALL_BATCH = 32  # below this a call lasts ~1 ms: a round times many single queries instead of one call
QUERIES = 64  # single queries per model per round at a small batch (p50 and p90 over them)
SMALL_BATCH_WARMUP = 5  # untimed calls before the first round (compiled graphs, runtime arenas)
SLICE_ROWS = MLP_CHUNK  # a large batch's pair alternates models every slice of this many images
PROTOCOL = (f"interleaved rounds (before each round every model's tensors move to fresh allocations; each round "
            f"times every model once per batch size, in a shuffled order, each call right beside one of the "
            f"reference's, the pair's order drawn at random; on CPU, above {SLICE_ROWS} images the pair runs "
            f"interleaved in slices of {SLICE_ROWS} images, the order drawn per slice, each model's time the sum "
            f"of its slices'; "
            f"below batch {SMALL_BATCH}, {QUERIES} (the protocol's queries) single queries, each beside one of the "
            "reference's, the order drawn per query, the round's time their median (p50), their 90th percentile "
            "(p90) kept beside it); "
            "with racing, a model stops being timed once its interval is within the target or it is clearly "
            "off the front; per-example median over rounds; ratio to the reference = 20%-trimmed geometric mean of the "
            "rounds' ratios of adjacent calls; 95% interval over rounds: Tukey-McLaughlin trimmed-t at the "
            f"{RATIO_LEVEL:.0%} level, which covers >= 95% with the stopping rule; none below "
            f"{MIN_INTERVAL_ROUNDS} rounds")

Call = Callable[[], object]  # does one batch's work and returns when it is done (synchronized)


def batch_sizes_for(n_images: int) -> list[int]:
    """The two latency batch sizes: the whole test set (at most 10,000) and 1."""
    big, small = DEFAULT_BATCH_SIZES
    return [min(big, n_images), small]


@dataclass(frozen=True)
class TimingProtocol:
    """When interleaved timing stops: every ratio's 95% interval within +-``target`` at the first
    batch size (after at least ``min_rounds``), or ``max_rounds``, or ``time_cap_s`` of rounds."""

    target: float = TARGET_HALFWIDTH
    min_rounds: int = MIN_ROUNDS
    max_rounds: int = MAX_ROUNDS
    time_cap_s: float = TIME_CAP_S
    queries: int = QUERIES  # per model and round, below SMALL_BATCH

    def __post_init__(self) -> None:
        if not self.target > 0 or not self.time_cap_s > 0:
            raise ValueError(f"target and time cap must be above 0, got {self.target} and {self.time_cap_s}")
        if self.queries < 10:
            raise ValueError(f"a p90 needs at least 10 queries per round, got {self.queries}")
        if not 1 <= self.min_rounds <= self.max_rounds:
            raise ValueError(f"need 1 <= min_rounds <= max_rounds, got {self.min_rounds} and {self.max_rounds}")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_TIMING = TimingProtocol()


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
    """Seconds of one call. Warm-up runs once before the first round, not here:
    ``torch.utils.benchmark.Timer.timeit`` would run untimed calls each time, tripling a round
    of second-long calls, and a query must be timed alone to give a p90."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _time_pair(reference: Call, call: Call, batch_size: int, rng: np.random.Generator,
               queries: int = QUERIES) -> tuple[float, float, tuple[float, float] | None]:
    """Seconds of the reference's call and of ``call``, timed back to back (order drawn at
    random), or, when both come in the same number of slices, alternating slice by slice.
    Below ``SMALL_BATCH``: ``queries`` such pairs, their medians, and (p90 of ``call``, p90 of
    the reference's)."""
    if batch_size < SMALL_BATCH:
        ref_t, call_t = np.empty(queries), np.empty(queries)
        for q in range(queries):
            if rng.random() < 0.5:
                ref_t[q] = _time_one(reference, batch_size)
                call_t[q] = _time_one(call, batch_size)
            else:
                call_t[q] = _time_one(call, batch_size)
                ref_t[q] = _time_one(reference, batch_size)
        return (float(np.median(ref_t)), float(np.median(call_t)),
                (float(np.quantile(call_t, 0.9)), float(np.quantile(ref_t, 0.9))))
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
    return t_ref, t_call, None


@dataclass
class LatencyStats:
    batch_size: int
    per_example_us: float  # median over rounds
    iqr_us: float
    ratio: float  # trimmed geometric mean of per-round (this model's time / the reference's time)
    ratio_lo: float  # 95% bootstrap interval over rounds
    ratio_hi: float
    rounds: int
    # below SMALL_BATCH: the median over rounds of each round's 90th-percentile query, and the
    # ratio of the rounds' p90s to the reference's (per_example_us and ratio are the p50s')
    p90_us: float = float("nan")
    p90_ratio: float = float("nan")
    p90_ratio_lo: float = float("nan")
    p90_ratio_hi: float = float("nan")


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
    tails: dict[str, dict[int, list[list[float]]]] = field(default_factory=dict)  # per round [p90, reference's p90]
    threads: int = field(default_factory=torch.get_num_threads)
    method: str = f"{PROTOCOL}; each call: {INFERENCE_METHOD}"
    retired: dict[str, str] = field(default_factory=dict)  # name -> why racing stopped timing it
    protocol: TimingProtocol = field(default_factory=TimingProtocol)

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
        out = {k: v for k, v in asdict(self).items() if k not in ("stats", "times", "paired", "tails")}
        return {**out, "warning": self.warning()}


def _retirement(name: str, intervals: dict[str, tuple[float, float, float]], accuracy: dict[str, float],
                target: float, labels: dict[str, str]) -> str | None:
    """Why ``name`` needs no more rounds, or None: its interval is within +-``target``, or it is
    clearly off the front, i.e. some model at least as accurate on validation is faster by more
    than the target even at the ends of both intervals (``name``'s low end above the other's high
    end times 1 + ``target``). Models without an accuracy (controls) retire by their interval only."""
    mid, lo, hi = intervals[name]
    if relative_halfwidth(mid, lo, hi) <= target:
        return f"interval within +-{100 * target:g}%"
    if name not in accuracy or np.isnan(lo):
        return None
    for other, (o_mid, o_lo, o_hi) in intervals.items():
        if other != name and accuracy.get(other, -1.0) >= accuracy[name] and lo > o_hi * (1 + target):
            return (f"off the front: {labels.get(other, other)} is at least as accurate on validation and faster "
                    f"({fmt_interval(mid, lo, hi, unit='x')} against {fmt_interval(o_mid, o_lo, o_hi, unit='x')})")
    return None


def time_interleaved(calls: dict[str, dict[int, Call]], reference: str, protocol: TimingProtocol = DEFAULT_TIMING,
                     seed: int = 0, progress: bool = True, journal: RoundJournal | None = None,
                     race: bool = False, accuracy: dict[str, float] | None = None,
                     labels: dict[str, str] | None = None) -> Rounds:
    """Time every model's calls in shuffled rounds, each beside a call of ``reference``, until
    the ``protocol`` stops them (each ratio to it at the first batch size known to +-its target).
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
    target, min_rounds, max_rounds, time_cap_s = (protocol.target, protocol.min_rounds, protocol.max_rounds,
                                                  protocol.time_cap_s)
    accuracy = dict(accuracy or {})
    batch_sizes = list(calls[reference])
    big = batch_sizes[0]
    others = [n for n in calls if n != reference]
    for name in calls:  # warm-up: untimed calls (compiles, fills caches, allocates)
        for b in batch_sizes:
            for _ in range(SMALL_BATCH_WARMUP if b < SMALL_BATCH else 1):
                calls[name][b]()
    # Shapes: per (model, batch size) one entry per round the model was timed in (a prefix of
    # the rounds); the reference's own list grows by one per timed model per round.
    times: dict[tuple[str, int], list[float]] = {(n, b): [] for n in calls for b in batch_sizes}
    paired: dict[tuple[str, int], list[float]] = {(n, b): [] for n in others for b in batch_sizes}
    tails: dict[tuple[str, int], list[list[float]]] = {(n, b): [] for n in others for b in batch_sizes}
    retired: dict[str, str] = {}

    def keep(record: dict) -> None:
        for b in batch_sizes:
            times[reference, b].extend(record["reference"][b])
            for n in record["seconds"]:
                times[n, b].append(record["seconds"][n][b])
                paired[n, b].append(record["paired"][n][b])
                if b in record.get("p90", {}).get(n, {}):
                    tails[n, b].append(record["p90"][n][b])

    def intervals() -> dict[str, tuple[float, float, float]]:
        out = {reference: (1.0, 1.0, 1.0)}
        for n in others:
            out[n] = (ratio_interval(times[n, big], paired[n, big]) if times[n, big]
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
    if journal is not None and journal.refused:
        print(f"{journal.refused}; starting anew")
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
                        "reference": {b: [] for b in batch_sizes}, "p90": {n: {} for n in active}}
        if not others:
            for b in batch_sizes:
                record["reference"][b].append(_time_one(calls[reference][b], b))
        pairs = [(n, b) for n in active for b in batch_sizes]
        for i in rng.permutation(len(pairs)):
            name, b = pairs[i]
            t_ref, t_model, tail = _time_pair(calls[reference][b], calls[name][b], b, rng, protocol.queries)
            record["seconds"][name][b], record["paired"][name][b] = t_model, t_ref
            record["reference"][b].append(t_ref)
            if tail is not None:
                record["p90"][name][b] = list(tail)
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
                 else ratio_interval(times[name, b], paired[name, b]))
            n_rounds = rounds if name == reference else len(times[name, b])
            stats[name][b] = LatencyStats(b, statistics.median(per_ex), q[2] - q[0], *r, n_rounds,
                                          *_tail_stats(name, reference, b, tails))
    raw = {name: {b: times[name, b] for b in batch_sizes} for name in calls}
    raw_paired = {name: {b: paired[name, b] for b in batch_sizes} for name in others}
    raw_tails = {name: {b: tails[name, b] for b in batch_sizes if tails[name, b]} for name in others}
    return Rounds(stats, reference, rounds, time.perf_counter() - start, stopped_by, target, worst, raw, raw_paired,
                  raw_tails, retired=retired, protocol=protocol)


def _tail_stats(name: str, reference: str, b: int, tails: dict[tuple[str, int], list[list[float]]]
                ) -> tuple[float, float, float, float]:
    """p90 per example in us (median over rounds) and its ratio to the reference's, with an
    interval; the reference's own p90 is the median of those timed beside every other model."""
    if b >= SMALL_BATCH:
        return (float("nan"),) * 4
    if name == reference:
        ref = [t[1] for (_, bb), ts in tails.items() if bb == b for t in ts]
        return (statistics.median(ref) / b * 1e6 if ref else float("nan"), 1.0, 1.0, 1.0)
    if not tails[name, b]:
        return (float("nan"),) * 4
    model_s, ref_s = np.asarray(tails[name, b]).T
    return (float(np.median(model_s)) / b * 1e6, *ratio_interval(model_s, ref_s))


def aa_check(stats: dict[int, LatencyStats]) -> str | None:
    """A loud message when an A/A control's ratio interval excludes 1.0 at any batch size, or
    when too few rounds were timed to tell."""
    few = [s.batch_size for s in stats.values() if np.isnan(s.ratio_lo)]
    if few:
        return (f"WARNING: too few rounds ({min(s.rounds for s in stats.values())}, an interval needs "
                f"{MIN_INTERVAL_ROUNDS}) to check the A/A control at batch {', '.join(map(str, few))}: this run's "
                "timing noise is unknown; rerun with more rounds (--max-rounds, --time-cap)")
    bad = [s for s in stats.values() if not s.ratio_lo <= 1.0 <= s.ratio_hi]
    if not bad:
        return None
    return ("WARNING: the A/A control (a copy of the dense model timed as another model) reads "
            + "; ".join(f"{fmt_interval(s.ratio, s.ratio_lo, s.ratio_hi, unit='x')} at batch {s.batch_size}"
                        for s in bad)
            + ": its interval excludes 1.0, so this run's timing noise is larger than its intervals say; "
              "do not trust ratios this close to 1, and rerun with more rounds (--max-rounds, --time-cap) "
              "on a quieter machine")
