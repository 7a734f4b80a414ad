"""Compress a torchvision model end to end: factorize, save, load, export, time.

    python examples/compress_torchvision.py

A vision transformer with random weights stands in for yours; a trained model keeps more of
its function at a given rank (choose the rule and rank on your validation data).
"""

import copy
import tempfile

import torch
import torchvision

from torch_impl import LowRankConfig, factorize_, load_compressed, report_table, save_compressed
from torch_impl.deploy.export import check_exported_outputs, export_model
from torch_impl.measure.latency import TimingProtocol
from torch_impl.measure.paired import time_against_original

torch.manual_seed(0)
original = torchvision.models.VisionTransformer(image_size=32, patch_size=4, num_layers=2, num_heads=4,
                                                hidden_dim=256, mlp_dim=1024, num_classes=10).eval()
torch.nn.init.normal_(original.heads.head.weight, std=0.05)  # torchvision starts the head at zero
model = copy.deepcopy(original)
print(report_table(factorize_(model, LowRankConfig(rank_fraction=0.25))))  # attention out_proj: kept, and why
x = torch.randn(64, 3, 32, 32)
with tempfile.TemporaryDirectory() as d, torch.no_grad():
    save_compressed(f"{d}/vit", model, base_model=original)  # only the replaced layers are stored
    loaded, _ = load_compressed(f"{d}/vit", base_model=copy.deepcopy(original))
    print("identical after save and load:", torch.equal(loaded(x), model(x)))
    check = check_exported_outputs(model, export_model(model, f"{d}/vit.onnx", "onnx", example=x[:2]), "onnx", x)
    print(f"ONNX: factors kept {check['factor_shapes_kept']}, largest difference {check['max_abs_output_diff']:.1e}")
timing = time_against_original(original, {"low-rank": model}, x, protocol=TimingProtocol(target=0.05, max_rounds=8))
for name, row in timing["rows"].items():
    r = row[len(x)]
    print(f"{name:<50} {r['ratio']:.3f}x [{r['lo']:.3f}, {r['hi']:.3f}] the original's time at batch {len(x)}")
print(timing["aa_warning"] or "the A/A control's interval contains 1.0")
