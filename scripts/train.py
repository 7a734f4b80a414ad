"""Train the take-home network on CIFAR-10 with the fixed recipe (Lightning).

The code is torch_impl/commands/train.py, also run as `svd-compress train` once installed.
"""

from torch_impl.commands.train import main

if __name__ == "__main__":
    main()
