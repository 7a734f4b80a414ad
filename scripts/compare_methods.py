"""Every compression method on one trained checkpoint: accuracy, latency, one Pareto plot, REPORT.md.

The code is torch_impl/commands/compare_methods.py, also run as `svd-compress compare` once installed.
"""

from torch_impl.commands.compare_methods import main

if __name__ == "__main__":
    main()
