"""CompareConfig records what decides a comparison's models, the latency table's runtime included."""

from __future__ import annotations

from torch_impl.compare.config import CompareConfig


def test_the_rank_tables_runtime_is_a_setting_only_when_it_is_not_the_default() -> None:
    default = CompareConfig().as_dict()
    assert "rank_runtime" not in default and "rank_precision" not in default  # earlier runs' points stay valid
    other = CompareConfig(rank_runtime="onnxruntime", rank_precision="int8-static").as_dict()
    assert (other["rank_runtime"], other["rank_precision"]) == ("onnxruntime", "int8-static")
    assert {k: v for k, v in other.items() if not k.startswith("rank_")} == default  # so points are refused
