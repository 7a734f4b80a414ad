"""How should a batch of 10,000 images be run? Measures the options side by side, in one run.

    python scripts/bench_inference.py [--batch 10000] [--chunks 64,256,1024]

Prints per-example latency (mean of repeats after warm-up, torch.utils.benchmark) of the trunk and of the whole
dense model (freshly initialised: weights do not change the cost of dense fp32 kernels) for:
NCHW-contiguous input, the channels-last view in one call, and channels-last in chunks.
``torch_impl.inference.INFERENCE_CHUNK`` records the choice.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.benchmark import Timer

from torch_impl.cli.flags import make_parser, positive_int, positive_int_list
from torch_impl.cli.process import flush_denormals
from torch_impl.model import build_model
from torch_impl.provenance import device_name


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--batch", type=positive_int, default=10_000, help="images per call")
    p.add_argument("--chunks", type=positive_int_list(), default="64,128,256,512,1024,2500",
                   help="trunk chunk sizes to time")
    p.add_argument("--mlp-chunks", type=positive_int_list(), default="512,1024,2500",
                   help="MLP chunk sizes after a trunk in chunks of 256")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed calls per way")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/cli/process.py
    net = build_model(42).eval()  # weights do not change the cost of dense fp32 kernels
    images = torch.randint(0, 256, (args.batch, 32, 32, 3), dtype=torch.uint8)
    trunk = lambda x: net.features(x)
    full = lambda x: net.classifier(net.features(x))

    def split(x: torch.Tensor, trunk_chunk: int, mlp_chunk: int) -> list[torch.Tensor]:
        feats = torch.cat([trunk(x[i: i + trunk_chunk]) for i in range(0, len(x), trunk_chunk)])
        return [net.classifier(feats[i: i + mlp_chunk]) for i in range(0, len(feats), mlp_chunk)]
    with torch.inference_mode():
        cl = net.normalize(images)  # NCHW shape, channels-last strides (a view of NHWC)
        nchw = cl.contiguous()
        variants = {"NCHW contiguous, one call": (nchw, None), "channels-last view, one call": (cl, None)}
        for c in args.chunks:
            variants[f"channels-last, chunks of {c}"] = (cl, c)
        for c in args.mlp_chunks:
            variants[f"trunk chunks 256, MLP chunks {c}"] = (cl, (256, c))
        results = {}
        print(f"device: {device_name()}, threads: {torch.get_num_threads()}, batch {args.batch}")
        print(f"{'variant':<34}{'trunk us/ex':>12}{'model us/ex':>12}")
        for name, (x, chunk) in variants.items():
            row = []
            for fn in (trunk, full):
                if isinstance(chunk, tuple):  # trunk and MLP apart, as torch_impl.inference.predict does
                    if fn is trunk:
                        call = lambda: [trunk(x[i: i + 256]) for i in range(0, len(x), 256)]
                    else:
                        call = lambda: split(x, *chunk)
                else:
                    call = (lambda: fn(x)) if chunk is None else (
                        lambda: [fn(x[i: i + chunk]) for i in range(0, len(x), chunk)])
                timer = Timer(stmt="call()", globals={"call": call}, num_threads=torch.get_num_threads())
                row.append(timer.timeit(args.repeats).mean / args.batch * 1e6)  # after Timer's warm-up
            results[name] = row[1]
            print(f"{name:<34}{row[0]:>12.1f}{row[1]:>12.1f}")
    return results


if __name__ == "__main__":
    main()
