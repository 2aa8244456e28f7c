"""Fail `make setup` early when the environment falls into a known install trap."""

import importlib.util
import sys


def main() -> int:
    problems = []
    if importlib.util.find_spec("torchvision") is not None:
        problems.append(
            "torchvision is installed; there is no CPU build for torch 2.13.0 and the CUDA one breaks "
            "transformers/diffusers imports. Remove it: .venv/bin/pip uninstall -y torchvision"
        )
    try:
        import torch
    except ImportError:
        problems.append("torch is not importable")
    else:
        if not torch.__version__.startswith("2.13.0"):
            problems.append(f"torch {torch.__version__} installed, 2.13.0 expected (see constraints.txt)")
    for name in problems:
        print(f"check_env: {name}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
