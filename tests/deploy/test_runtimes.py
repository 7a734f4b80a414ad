"""torch.ao's and torchao's int8 are one model (the runtime matrix itself, end to end:
tests/commands/test_runtime_matrix.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import learnable_images
from tests.deploy.nets import SmallNet
from torch_impl.deploy.int8 import as_torchao_int8, dequantized
from torch_impl.factorize import dynamic_int8

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
# Either int8 path against fp32 on SmallNet's logits (|logit| up to 1.2): measured at most
# 0.016 (torch.ao) and 0.021 (torchao: its weights round twice, see torch_impl/deploy/int8.py) over
# three image seeds.
INT8_VS_FP32_ATOL = 0.05


def test_torchao_int8_is_the_same_int8_model() -> None:
    dense = SmallNet().eval()
    ao = dynamic_int8(dense)
    back = dequantized(ao)
    for q, lin in zip(ao.classifier[::2], back.classifier[::2]):  # the exact int8 grid values, now fp32
        assert isinstance(lin, nn.Linear) and torch.equal(lin.weight, q.weight().dequantize())
        assert torch.equal(lin.bias, q.bias())
    images = torch.from_numpy(learnable_images(2, seed=5)[0])
    tao = as_torchao_int8(ao)
    assert type(tao.classifier[0].weight).__name__ == "Int8Tensor"
    with torch.inference_mode():
        fp32, errs = dense(images), {}
        for name, m in (("torch.ao", ao), ("torchao", tao)):
            errs[name] = (m(images) - fp32).abs().max().item()
    assert all(0 < e <= INT8_VS_FP32_ATOL for e in errs.values()), errs  # quantized, and as close as torch.ao
    with pytest.raises(ValueError, match="expects a model with torch.ao dynamic int8"):
        as_torchao_int8(dense)
