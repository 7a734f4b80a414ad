"""Every compressed model in every precision and runtime, against dense fp32 eager: the deployment frontier.

The code is torch_impl/commands/deploy_frontier.py, also run as `svd-compress deploy` once installed.
"""

from torch_impl.commands.deploy_frontier import main

if __name__ == "__main__":
    main()
