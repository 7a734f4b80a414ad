"""The public API on networks that are not the take-home's (issue 30's table).

    .venv/bin/python docs/results/experiments/own_models.py

Per network (random weights, seed 0; ``tests/test_factorize.py``'s builders): factorize every
candidate at a quarter of its rank, report layers factorized / kept (why), parameters and MACs,
save as an overlay on the base model and load into a fresh copy (outputs identical?), export to
ONNX and check it, and time it against the original (paired rounds, A/A control) at one batch.
"""

import copy
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests.test_factorize import NETWORKS, seeded  # noqa: E402
from torch_impl import LowRankConfig, factorize_, load_compressed, save_compressed  # noqa: E402
from torch_impl.deploy.export import check_exported_outputs, export_model  # noqa: E402
from torch_impl.measure.latency import TimingProtocol  # noqa: E402
from torch_impl.measure.paired import CONTROL, time_against_original  # noqa: E402
from torch_impl.provenance import device_name  # noqa: E402

BATCH = {"mlp": 4096, "shared linear": 4096, "vit": 256, "mobilenet": 64}
PROTOCOL = TimingProtocol(target=0.03, min_rounds=5, max_rounds=40, time_cap_s=150)

print(f"{device_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
print("| network | factorized / kept dense (why) | params before -> after | MACs before -> after | "
      "time vs original [95%] | A/A control [95%] | timing stopped by | save/load identical | ONNX export |")
print("|---|---|---|---|---|---|---|---|---|")
for name, (build, shape) in NETWORKS.items():
    original = seeded(build)
    model = copy.deepcopy(original)
    report = factorize_(model, LowRankConfig(rank_fraction=0.25))
    x = torch.randn(BATCH[name], *shape[1:], generator=torch.Generator().manual_seed(1))
    kept = sorted({r.kept.split(":")[0] if "subclass" in r.kept else r.kept for r in report if r.rank is None})
    with tempfile.TemporaryDirectory() as d, torch.no_grad():
        save_compressed(f"{d}/m", model, base_model=original)
        loaded, _ = load_compressed(f"{d}/m", base_model=copy.deepcopy(original))
        same = torch.equal(loaded(x[:64]), model(x[:64]))
        check = check_exported_outputs(model, export_model(model, f"{d}/m.onnx", "onnx", example=x[:2]), "onnx",
                                       x[:64])
    t = time_against_original(original, {"low-rank": model}, x, [len(x)], PROTOCOL)
    r, aa = t["rows"]["low-rank"][len(x)], t["rows"][CONTROL][len(x)]
    n_fact = sum(r_.rank is not None for r_ in report)
    print(f"| {name} | {n_fact} / {len(report) - n_fact}" + (f" ({'; '.join(kept)})" if kept else "")
          + f" | {sum(x_.params_before for x_ in report):,} -> {sum(x_.params_after for x_ in report):,}"
          f" | {sum(x_.macs_before for x_ in report):,} -> {sum(x_.macs_after for x_ in report):,}"
          f" | {r['ratio']:.3f}x [{r['lo']:.3f}, {r['hi']:.3f}] at batch {len(x)}, {t['rounds']['rounds']} rounds"
          f" | {aa['ratio']:.3f}x [{aa['lo']:.3f}, {aa['hi']:.3f}]{' (A/A WARNING)' if t['aa_warning'] else ''}"
          f" | {t['rounds']['stopped_by']} | {same} | factors kept "
          f"{check['factor_shapes_kept']}, max diff {check['max_abs_output_diff']:.1e} |", flush=True)
