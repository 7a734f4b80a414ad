"""Torch vs the JAX/Haiku reference on one machine, in one run: accuracy and latency curves.

The code is torch_impl/commands/parity_report.py, also run as `svd-compress parity` once installed.
"""

from torch_impl.commands.parity_report import main

if __name__ == "__main__":
    main()
