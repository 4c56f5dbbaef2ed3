"""dgsynth's CPU kernels for mmcv ops: RoIAlign (average pooling) and NMS on all of torch's threads, mmcv's bits out.

On 2 cores mmcv 2.1's single-threaded CPU RoIAlign was a quarter of a detector training iteration's operator time and
half of detector evaluation's, and once it was replaced, its NMS was the next single-threaded op (8% of an iteration,
14% of evaluation; `bench/profile_train.py`, `bench/profile_evaluate.py`). `roi_align.cpp` and `nms.cpp` compute
what mmcv's kernels compute, with the same float operations in the same order (see each file), so every output is
the same to the bit; `module.cpp` binds them. `kernel()` compiles them once with torch's extension builder (a C++
compiler and ninja; about 50 s; kept in torch's extension cache, `TORCH_EXTENSIONS_DIR` or ~/.cache/torch_extensions,
under a name of its own for each checkout and source); `scripts/setup.sh` builds it. A compiler without OpenMP (Apple's
clang) gets a build without it, whose loops run on one thread, with a warning; without a compiler it warns once and
mmcv's own kernels run. Both give the same results, slower. `pipeline.mm.setup()` routes mmcv's calls here;
tests/test_kernels.py compares both kernels with mmcv's, bit for bit.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

SOURCES = [Path(__file__).with_name(name) for name in ("roi_align.cpp", "nms.cpp", "module.cpp")]
# No fused multiply-adds: every product and sum is rounded as in mmcv's kernels (built without them), so the bits agree.
FLAGS = ["-O3", "-ffp-contract=off"]
# torch's at::parallel_for splits work across threads only in code compiled with OpenMP (else it runs the loop on one
# thread); linked, the extension uses the OpenMP runtime torch has loaded, so torch.set_num_threads applies.
OPENMP = "-fopenmp"


@functools.cache
def kernel():
    """The compiled module (`roi_align_forward`, `roi_align_backward`, `nms`, `parallel_threads`): built with OpenMP,
    else without it (one thread, with a warning), else None (with a warning)."""
    from torch.utils.cpp_extension import load

    _ninja_first()
    errors = []
    for openmp in (True, False):
        try:
            compiled = load(name=build_name(openmp), sources=[str(source) for source in SOURCES],
                            extra_cflags=FLAGS + [OPENMP] * openmp, extra_ldflags=[OPENMP] * openmp)  # fmt: skip
        except Exception as error:  # noqa: BLE001  (no compiler, ninja or OpenMP: the next way gives the same results)
            errors.append(f"{type(error).__name__}: {error}")
            continue
        if not openmp:
            warnings.warn(f"dgsynth's CPU kernels were built without OpenMP ({errors[0]}): RoIAlign and NMS run on one "
                          "thread (the same results, slower). A compiler with OpenMP (gcc, or clang with libomp) "
                          "runs them on all of torch's threads.", stacklevel=2)  # fmt: skip
        return compiled
    warnings.warn(f"could not build dgsynth's CPU kernels ({errors[-1]}); RoIAlign and NMS run on mmcv's "
                  "single-threaded CPU kernels (the same results, slower). They need a C++ compiler and ninja.",
                  stacklevel=2)  # fmt: skip
    return None


def build_name(openmp: bool = True) -> str:
    """The build's name in torch's extension cache, which every checkout on the machine shares: one per checkout (the
    sources' folder), source and OpenMP or not, so that two clones never rebuild each other's build, nor replace it
    under a run."""
    flags = FLAGS + [OPENMP] * openmp
    digest = hashlib.sha1(f"{SOURCES[0].parent.resolve()}\n{' '.join(flags)}\n".encode())
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
