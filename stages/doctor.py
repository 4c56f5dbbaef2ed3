"""`dgsynth doctor`: what is installed, which device would run, whether mmcv's ops and our CPU kernels work, where
weights are looked up."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
from pathlib import Path

# The settings that make an AVX-512 x86-64 machine compute as an AVX2 one, bit for bit (the README's "Another machine
# gives other bits"): torch's vectorised kernels, oneDNN's convolutions, OpenCV's IPP, numpy's OpenBLAS.
PINS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENCV_IPP": "avx2",
        "OPENBLAS_CORETYPE": "Haswell"}
PACKAGES = ("torch", "mmengine", "mmcv", "mmsegmentation", "mmdet", "diffusers", "transformers", "dvc", "numpy",
            "pandas", "pyarrow")  # fmt: skip


def report() -> list[tuple[str, str]]:
    import torch
    from huggingface_hub import constants

    from pipeline.det.kernels import kernel
    from pipeline.mm import ops_status

    rows = [("python", platform.python_version()), ("platform", platform.platform())]
    for name in PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        rows.append(("device", f"cuda ({torch.cuda.device_count()}: {names})"))
    else:
        rows.append(("device", f"cpu ({os.cpu_count()} cores; no CUDA device visible)"))
    # torch's CPU kernels pick their code by it: results are bit-reproducible across machines only under PINS
    rows.append(("cpu instruction set", torch.backends.cpu.get_cpu_capability()))
    pinned = [f"{key}={os.environ[key]}" for key in PINS if key in os.environ]
    rows.append(("instruction-set pins", " ".join(pinned) if pinned else
                 "none (to compute as an AVX2 machine: " + " ".join(f"{k}={v}" for k, v in PINS.items()) + ")"))
    rows.append(("mmcv ops", ops_status()))
    compiled = kernel()
    rows.append(("cpu kernels", f"roialign, nms on {compiled.parallel_threads()} threads" if compiled is not None
                 else "mmcv's single-threaded roialign and nms (see the warning)"))
    rows.append(("hugging face cache", constants.HF_HUB_CACHE))
    rows.append(("hub offline", "yes" if constants.HF_HUB_OFFLINE else "no (set HF_HUB_OFFLINE=1 on machines without internet)"))
    rows.append(("torch hub / mm checkpoints", str(Path(torch.hub.get_dir()) / "checkpoints")))
    return rows
