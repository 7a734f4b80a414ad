"""Where a training step's time goes (batch 128, 2 cores): each part timed alone, 20 reps."""
import time, sys
import torch, torch.nn.functional as F
from torch_impl.cli.process import flush_denormals
flush_denormals()
from torch_impl.model import build_model
from torch_impl.lit_module import l2_term
from torch.optim.swa_utils import get_ema_multi_avg_fn
torch.manual_seed(0)
net = build_model(42)
x = torch.randint(0, 256, (128, 32, 32, 3), dtype=torch.uint8)
y = torch.randint(0, 10, (128,))
opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
avg = [p.detach().clone() for p in net.parameters()]
ema = get_ema_multi_avg_fn(decay=0.999)
def tm(name, fn, n=20):
    for _ in range(3): fn()
    t = time.perf_counter()
    for _ in range(n): fn()
    dt = (time.perf_counter() - t) / n * 1e3
    print(f"{name:<28} {dt:7.1f} ms", flush=True); return dt
def fwd():
    with torch.no_grad(): net(x)
def fb():
    opt.zero_grad(set_to_none=True); F.cross_entropy(net(x), y).backward()
tm("forward only", fwd)
tm("forward+backward", fb)
tm("adam fused step", lambda: opt.step())
tm("ema foreach", lambda: ema(avg, [p.detach() for p in net.parameters()], torch.tensor(1)))
tm("l2 term (no grad)", lambda: l2_term([p.detach() for p in net.parameters()]))
mode = sys.argv[1] if len(sys.argv) > 1 else ""
if mode == "compile":
    cnet = torch.compile(net)
    def cfb():
        opt.zero_grad(set_to_none=True); F.cross_entropy(cnet(x), y).backward()
    tm("compiled forward+backward", cfb)
