"""What every benchmark records about what it measured: the project's commit (marked when bench/ has changes) and the
machine or device it ran on (on a CPU: its model and the vector instruction set torch's kernels use, which sets the
bits of a result as well as its speed)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def commit() -> str:
    """`git rev-parse --short HEAD`, with " (bench/ modified)" when bench/ has uncommitted changes."""
    git = [["git", "rev-parse", "--short", "HEAD"], ["git", "status", "--porcelain", "--", "bench"]]
    head, dirty = (subprocess.run(a, capture_output=True, text=True, timeout=30).stdout.strip() for a in git)
    return head + (" (bench/ modified)" if dirty else "")


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows of it."""
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.is_file() else []  # fmt: skip
    return models[0] if models else platform.processor() or platform.machine()


def machine(**extra) -> dict:
    """The CPU's name, torch's instruction set on it, the core count, with `extra` (load averages, thread counts)."""
    import torch

    return {"cpu": cpu_name(), "isa": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(), **extra}


def device(cuda: bool | None = None) -> str:
    """The CUDA device's name (`cuda`: None means when one is visible), else "cpu (<name>, <n> threads)"."""
    import torch

    if torch.cuda.is_available() if cuda is None else cuda:
        return torch.cuda.get_device_name()
    return f"cpu ({cpu_name()}, {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"
