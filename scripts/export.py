"""Export a dense or compressed model to ONNX or torch.export, then check the file on real test images.

The code is torch_impl/commands/export.py, also run as `svd-compress export` once installed.
"""

from torch_impl.commands.export import main

if __name__ == "__main__":
    main()
