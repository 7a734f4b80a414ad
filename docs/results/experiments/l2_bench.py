"""Side by side: the training step with the l2 log value as pow-sum (stop 24) and as dot products (now)."""
import statistics, sys, numpy as np, torch
from torch_impl.cli.process import flush_denormals
flush_denormals()
import torch_impl.lit_module as lm
from torch_impl.measure.train_bench import step_times, _result, format_rows, AA_SUFFIX
from torch_impl.data import CIFAR10DataModule
from torch_impl.training import config_from_preset
from dataclasses import replace
new_l2 = lm.l2_term
old_l2 = lambda params, coef=lm.L2_COEF: coef * 0.5 * torch.stack([p.pow(2).sum() for p in params]).sum()
ways = {"stop 24 (pow-sum l2)": old_l2, "now (dot l2)": new_l2, "stop 24 (pow-sum l2)" + AA_SUFFIX: old_l2}
base = config_from_preset("cpu", data_dir=None)
dm = CIFAR10DataModule(base.data_dir, batch_size=128, shuffle_seed=42)
blocks, steps, warmup = int(sys.argv[1]), 40, 10
per = {w: [] for w in ways}; rng = np.random.default_rng(1); names = list(ways)
for b in range(blocks):
    for i in rng.permutation(len(names)):
        lm.l2_term = ways[names[i]]
        per[names[i]].append(statistics.median(step_times(replace(base, steps=steps + warmup), dm)[warmup:]))
res = _result(per, 128, blocks, steps, warmup, {w: {} for w in ways}, "")
print(format_rows(res))
for r in res["rows"]: print(r["way"], [round(x, 1) for x in r["ms_per_step_per_block"]])
