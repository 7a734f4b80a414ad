"""Sweep SVD rank fractions of a trained network: accuracy, latency, parameters, MACs, plots.

The code is torch_impl/commands/sweep_ranks.py, also run as `svd-compress sweep` once installed.
"""

from torch_impl.commands.sweep_ranks import main

if __name__ == "__main__":
    main()
