"""What every benchmark records about what it measured: the project's commit (marked when bench/ has changes) and the
machine or device it ran on."""

from __future__ import annotations

import os
import platform
import subprocess


def commit() -> str:
    """`git rev-parse --short HEAD`, with " (bench/ modified)" when bench/ has uncommitted changes."""
    git = [["git", "rev-parse", "--short", "HEAD"], ["git", "status", "--porcelain", "--", "bench"]]
    head, dirty = (subprocess.run(a, capture_output=True, text=True, timeout=30).stdout.strip() for a in git)
    return head + (" (bench/ modified)" if dirty else "")


def machine(**extra) -> dict:
    """The CPU's name and core count, with `extra` (load averages, thread counts) beside them."""
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), **extra}


def device(cuda: bool | None = None) -> str:
    """The CUDA device's name (`cuda`: None means when one is visible), else "cpu (<name>, <n> threads)"."""
    import torch

    if torch.cuda.is_available() if cuda is None else cuda:
        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
