"""The CPU RoIAlign of `roi_align.cpp`: mmcv's average-pooling kernel on all of torch's threads, the same bits out.

On 2 cores mmcv's single-threaded CPU RoIAlign was a quarter of a detector training iteration's operator time and half
of detector evaluation's (`bench/profile_train.py`, `bench/profile_evaluate.py`). `kernel()` compiles roi_align.cpp
once with torch's extension builder (a C++ compiler and ninja; about 40 s; kept in torch's extension cache,
`TORCH_EXTENSIONS_DIR` or ~/.cache/torch_extensions, under a name of its own for each checkout and source);
`scripts/setup.sh` builds it. Without a compiler it warns once and mmcv's own kernel runs: the same results, slower.
`pipeline.mm.setup()` routes mmcv's RoIAlign through it; tests/test_roi_align.py compares the two kernels bit for bit.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_suffix(".cpp")
# No fused multiply-adds: every product and sum is rounded as in mmcv's kernel (built without them), so the bits agree.
FLAGS = ["-O3", "-ffp-contract=off"]


@functools.cache
def kernel():
    """The compiled module (`forward`, `backward`), or None (with a warning) where it cannot be built."""
    from torch.utils.cpp_extension import load

    try:
        _ninja_first()
        return load(name=build_name(), sources=[str(SOURCE)], extra_cflags=FLAGS)
    except Exception as error:  # noqa: BLE001  (a missing compiler or ninja: mmcv's kernel gives the same results)
        warnings.warn(f"could not build {SOURCE.name} ({type(error).__name__}: {error}); RoIAlign runs on mmcv's "
                      "single-threaded CPU kernel (the same results, slower). It needs a C++ compiler and ninja.",
                      stacklevel=2)  # fmt: skip
        return None


def build_name() -> str:
    """The build's name in torch's extension cache, which every checkout on the machine shares: one per checkout (the
    source's path) and source, so that two clones never rebuild each other's build, nor replace it under a run."""
    digest = hashlib.sha1(f"{SOURCE.resolve()}\n{' '.join(FLAGS)}\n".encode() + SOURCE.read_bytes()).hexdigest()
    return f"dgsynth_roi_align_{digest[:12]}"


def _ninja_first() -> None:
    """Put the environment's ninja (the pinned package) first on PATH, where torch looks for it: a build checked by
    another ninja (the system's) reads as out of date and compiles again, every time the two alternate."""
    try:
        import ninja
    except ImportError:
        return  # torch finds ninja on PATH, or fails with its own message
    path = os.environ.get("PATH", "")
    if not path.startswith(ninja.BIN_DIR + os.pathsep):
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + path
