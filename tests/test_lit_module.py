"""The fixed recipe's LightningModule: the loss, and the L2 term's gradient through Adam."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from tests.conftest import TinyNet, learnable_images
from torch_impl.lit_module import L2_COEF, LitClassifier, l2_term, recipe_loss

# Measured on an Intel Xeon (largest difference; margin = how far it could grow before failing):
LOSS_RTOL = 1e-6  # fp32 loss against a float64 hand computation; 4.9e-8 (margin 21)
ADAM_ATOL = 1e-7  # fp32, three Adam steps of size ~1e-3, against autograd's; 3.7e-9 (27)


def test_loss_matches_hand_computation() -> None:
    model = TinyNet()
    torch.manual_seed(0)
    images = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    labels = torch.tensor([0, 3, 9, 3])
    logits = model(images).double().detach().numpy()
    xent = np.mean([math.log(np.exp(row).sum()) - row[y] for row, y in zip(logits, labels.tolist())])
    sq = sum(float((p.detach().double() ** 2).sum()) for p in model.parameters())  # biases included
    expected = xent + 1e-4 * 0.5 * sq
    got = recipe_loss(model, images, labels).detach().item()
    assert got == pytest.approx(expected, rel=LOSS_RTOL)
    assert float(l2_term(list(model.parameters()))) == pytest.approx(1e-4 * 0.5 * sq, rel=LOSS_RTOL)


def test_adam_weight_decay_equals_l2_in_the_loss() -> None:
    """Training's fused path (xent + Adam weight_decay) takes the recipe's exact Adam steps."""
    torch.manual_seed(0)
    lit = LitClassifier(model=TinyNet())
    with torch.no_grad():  # non-zero biases so that their L2 gradient matters too
        lit.model.fc.bias.normal_()
    ref = copy.deepcopy(lit.model)
    opt_fast = lit.configure_optimizers()
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-3)
    images, labels = learnable_images(2, seed=0)
    batch = (torch.from_numpy(images), torch.from_numpy(labels))
    for _ in range(3):
        opt_fast.zero_grad()
        lit.training_step(batch, 0).backward()
        opt_fast.step()
        opt_ref.zero_grad()
        recipe_loss(ref, *batch).backward()
        opt_ref.step()
    for (name, a), b in zip(lit.model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=ADAM_ATOL, msg=lambda m: f"{name}: {m}")
    assert opt_fast.param_groups[0]["weight_decay"] == L2_COEF


