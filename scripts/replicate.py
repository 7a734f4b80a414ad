"""The comparison on several independently trained dense checkpoints: which claims hold in all.

The code is torch_impl/commands/replicate.py, also run as `svd-compress replicate` once installed.
"""

from torch_impl.commands.replicate import main

if __name__ == "__main__":
    main()
