"""Per-call noise at batch 10,000: dense vs a deep copy, alternating A,B x3 per round."""
import copy, json, sys, time
import numpy as np, torch
from torch_impl.cli.process import flush_denormals
flush_denormals()
from torch_impl.checkpoint import load_model
from torch_impl.data import CIFAR10DataModule
from torch_impl.measure.latency import torch_calls, relayout
R = int(sys.argv[1])
dense, _ = load_model("runs/cpu_seed42/model.pt")
images = torch.from_numpy(CIFAR10DataModule(None).numpy_splits()["test"][0])
b = copy.deepcopy(dense)
ca, cb = torch_calls(dense, images, [10000])[10000], torch_calls(b, images, [10000])[10000]
ca(); cb()
out = []
for r in range(R):
    relayout(dense); relayout(b)
    row = []
    for k in range(3):
        for c in (ca, cb):
            t = time.perf_counter(); c(); row.append(time.perf_counter() - t)
    out.append(row); print(r, np.round(row, 3), flush=True)
import os; os.makedirs("runs/exp", exist_ok=True)
json.dump(out, open("runs/exp/noise_k.json", "w"))
a = np.array(out); A, B = a[:, 0::2], a[:, 1::2]
print("per-call log sd", np.log(a).std(axis=0).round(3))
print("single ratio logsd", np.log(B[:, 0] / A[:, 0]).std().round(4))
print("min3 ratio logsd", np.log(B.min(1) / A.min(1)).std().round(4))
print("med3 ratio logsd", np.log(np.median(B, 1) / np.median(A, 1)).std().round(4))
print("mean3 ratio logsd", np.log(B.mean(1) / A.mean(1)).std().round(4))
