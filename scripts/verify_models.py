"""Load saved models in this (fresh) process and check they predict what they predicted when saved.

The code is torch_impl/commands/verify_models.py, also run as `svd-compress verify` once installed.
"""

from torch_impl.commands.verify_models import main

if __name__ == "__main__":
    main()
