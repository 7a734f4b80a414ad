"""How should a batch of 10,000 images be run? Measures the options side by side, in one run.

The code is torch_impl/commands/bench_inference.py, also run as `svd-compress bench-inference` once installed.
"""

from torch_impl.commands.bench_inference import main

if __name__ == "__main__":
    main()
