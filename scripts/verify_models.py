"""Load saved models in this (fresh) process and check they predict what they predicted when saved.

The code is torch_impl/commands/verify_models.py, also run as `svd-compress verify` once installed.
"""

import sys

from torch_impl.commands.verify_models import exit_status, main

if __name__ == "__main__":
    sys.exit(exit_status(main()))  # 1 when a model's predictions differ
