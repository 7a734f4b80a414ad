"""Dense and compressed models in torch eager, torch.compile and ONNX Runtime, timed together.

The code is torch_impl/commands/runtime_matrix.py, also run as `svd-compress runtimes` once installed.
"""

from torch_impl.commands.runtime_matrix import main

if __name__ == "__main__":
    main()
