"""One process: jax_ref training steps/s (fused and two-program) and whole-batch inference, under $XLA_FLAGS."""
import json, os, sys, time
import numpy as np, jax
from jax_ref.model import init_params, net
from jax_ref.train import train
rng = np.random.default_rng(0)
data = (rng.integers(0, 256, (45000, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 45000))
out = {"flags": os.environ.get("XLA_FLAGS", "")}
for fused in (True, False):
    train(data, 2, 128, progress=False, fused=fused)  # compile
    r = train(data, int(sys.argv[1]), 128, progress=False, fused=fused)
    out[f"train_img_s_{'fused' if fused else 'two'}"] = r["images_per_s"]
p = jax.device_put(init_params(42))
x = jax.device_put(data[0][:10000])
f = jax.jit(net.apply)
jax.block_until_ready(f(p, x))
ts = []
for _ in range(3):
    t = time.perf_counter(); jax.block_until_ready(f(p, x)); ts.append(time.perf_counter() - t)
out["infer_us_b10000_min"] = min(ts) / 10000 * 1e6
x1 = jax.device_put(data[0][:1]); jax.block_until_ready(f(p, x1))
t = time.perf_counter()
for _ in range(50): jax.block_until_ready(f(p, x1))
out["infer_us_b1"] = (time.perf_counter() - t) / 50 * 1e6
print(json.dumps(out))
