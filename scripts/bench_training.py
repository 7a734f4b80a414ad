"""How fast does the recipe train? Ways of running it, timed side by side in one run.

The code is torch_impl/commands/bench_training.py, also run as `svd-compress bench-training` once installed.
"""

from torch_impl.commands.bench_training import main

if __name__ == "__main__":
    main()
