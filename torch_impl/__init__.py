"""svd-compress: SVD low-rank compression of PyTorch models, measured.

On any ``nn.Module`` (docs: README, "On your own model")::

    from torch_impl import LowRankConfig, factorize_, report_table, save_compressed, load_compressed

    report = factorize_(model, LowRankConfig(energy=0.9), filter_fn=lambda m, name: name != "head")
    print(report_table(report))                       # per layer: rank, params and MACs, or why kept dense
    save_compressed("my_model", model, base_model=original)   # only what changed, as an overlay
    model, manifest = load_compressed("my_model", base_model=build_my_model())
"""

from torch_impl.artifact import load_compressed, save_compressed
from torch_impl.factorize import LowRankConfig, by_name, compress_model, factorize_, linear_layers, report_table
from torch_impl.lowrank import LayerReport, LowRankLinear, break_even_rank, rank_from_fraction

__all__ = [
    "LayerReport",
    "LowRankConfig",
    "LowRankLinear",
    "break_even_rank",
    "by_name",
    "compress_model",
    "factorize_",
    "linear_layers",
    "load_compressed",
    "rank_from_fraction",
    "report_table",
    "save_compressed",
]
