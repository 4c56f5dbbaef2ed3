"""The `openblas_avx2` marker: a test that forces numpy's OpenBLAS to its AVX2 ("Haswell") kernel runs only on an
x86-64 CPU that has AVX2, and is skipped elsewhere."""

from __future__ import annotations

import platform

import pytest
from numpy._core._multiarray_umath import __cpu_features__


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("openblas_avx2") and (platform.machine() not in ("x86_64", "AMD64")
                                                     or not __cpu_features__.get("AVX2")):  # fmt: skip
        pytest.skip("OpenBLAS's AVX2 kernel needs an x86-64 CPU with AVX2")
