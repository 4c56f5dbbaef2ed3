"""dgsynth's CPU kernels for mmcv ops: RoIAlign (average pooling) and NMS on all of torch's threads, mmcv's bits out.

On 2 cores mmcv 2.1's single-threaded CPU RoIAlign was a quarter of a detector training iteration's operator time and
half of detector evaluation's, and once it was replaced, its NMS was the next single-threaded op (8% of an iteration,
14% of evaluation; `bench/profile_train.py`, `bench/profile_evaluate.py`). `roi_align.cpp` and `nms.cpp` compute
what mmcv's kernels compute, with the same float operations in the same order (see each file), so every output is
the same to the bit; `module.cpp` binds them. `kernel()` compiles them once with torch's extension builder (a C++
compiler and ninja; about 50 s; kept in torch's extension cache, `TORCH_EXTENSIONS_DIR` or ~/.cache/torch_extensions,
under a name of its own for each checkout and source); `scripts/setup.sh` builds it. Without a compiler it warns once
and mmcv's own kernels run: the same results, slower. `pipeline.mm.setup()` routes mmcv's calls here;
tests/test_kernels.py compares both kernels with mmcv's, bit for bit.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

SOURCES = [Path(__file__).with_name(name) for name in ("roi_align.cpp", "nms.cpp", "module.cpp")]
# OpenMP: torch's at::parallel_for splits work across threads only in code compiled with it (else it runs the loop
# on one thread); linked, the extension uses the OpenMP runtime torch has loaded, so torch.set_num_threads applies.
# No fused multiply-adds: every product and sum is rounded as in mmcv's kernels (built without them), so the bits agree.
FLAGS = ["-O3", "-ffp-contract=off", "-fopenmp"]


@functools.cache
def kernel():
    """The compiled module (`roi_align_forward`, `roi_align_backward`, `nms`), or None (with a warning) where it
    cannot be built."""
    from torch.utils.cpp_extension import load

    try:
        _ninja_first()
        return load(name=build_name(), sources=[str(source) for source in SOURCES], extra_cflags=FLAGS,
                    extra_ldflags=["-fopenmp"])
    except Exception as error:  # noqa: BLE001  (a missing compiler or ninja: mmcv's kernels give the same results)
        warnings.warn(f"could not build dgsynth's CPU kernels ({type(error).__name__}: {error}); RoIAlign and NMS run "
                      "on mmcv's single-threaded CPU kernels (the same results, slower). They need a C++ compiler and "
                      "ninja.", stacklevel=2)  # fmt: skip
        return None


def build_name() -> str:
    """The build's name in torch's extension cache, which every checkout on the machine shares: one per checkout (the
    sources' folder) and source, so that two clones never rebuild each other's build, nor replace it under a run."""
    digest = hashlib.sha1(f"{SOURCES[0].parent.resolve()}\n{' '.join(FLAGS)}\n".encode())
    for source in SOURCES:
        digest.update(source.read_bytes())
    return f"dgsynth_kernels_{digest.hexdigest()[:12]}"


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
