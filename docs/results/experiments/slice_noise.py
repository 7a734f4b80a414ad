"""Whole-call pairs vs slice-interleaved pairs at batch 10,000: dense beside a deep copy.

Each round times the pair both ways, in a random order of the two ways: (whole) one
predict() call of each model on the 10,000 images, back to back; (sliced) the same images
in slices of MLP_CHUNK, the two models alternating slice by slice, each model's slice times
summed. Prints the per-round log-ratio sd of each way: the noise each leaves in a ratio.
Usage: python docs/results/experiments/slice_noise.py ROUNDS
"""
import copy
import sys
import time

import numpy as np
import torch

from torch_impl.checkpoint import load_model
from torch_impl.data import CIFAR10DataModule
from torch_impl.inference import MLP_CHUNK, predict
from torch_impl.measure.latency import relayout
from torch_impl.cli.process import flush_denormals

flush_denormals()
R = int(sys.argv[1])
dense, _ = load_model("runs/cpu_seed42/model.pt")
dense.eval()
copy_ = copy.deepcopy(dense)
images = torch.from_numpy(CIFAR10DataModule(None).numpy_splits()["test"][0])
slices = [images[i:i + MLP_CHUNK] for i in range(0, len(images), MLP_CHUNK)]
rng = np.random.default_rng(0)


def run(m, x):
    with torch.inference_mode():
        predict(m, x)


def whole(a, b):
    out = {}
    for m in ((a, b) if rng.random() < 0.5 else (b, a)):
        t = time.perf_counter()
        run(m, images)
        out[id(m)] = time.perf_counter() - t
    return out[id(a)], out[id(b)]


def sliced(a, b):
    ta = tb = 0.0
    for x in slices:
        for m in ((a, b) if rng.random() < 0.5 else (b, a)):
            t = time.perf_counter()
            run(m, x)
            d = time.perf_counter() - t
            if m is a:
                ta += d
            else:
                tb += d
    return ta, tb


run(dense, images), run(copy_, images)
res = {"whole": [], "sliced": []}
for r in range(R):
    relayout(dense), relayout(copy_)
    for way in (("whole", "sliced") if rng.random() < 0.5 else ("sliced", "whole")):
        ta, tb = (whole if way == "whole" else sliced)(dense, copy_)
        res[way].append((ta, tb))
    print(r, {k: np.round(v[-1], 3).tolist() for k, v in res.items()}, flush=True)
for k, v in res.items():
    v = np.array(v)
    lr = np.log(v[:, 1] / v[:, 0])
    print(f"{k}: mean call {v.mean():.3f} s, log-ratio mean {lr.mean():+.4f} sd {lr.std(ddof=1):.4f}")
