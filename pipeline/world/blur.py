"""The world's smoothing filter: `np.convolve(row, kernel, "same")` per row, with the same bits on every CPU.

numpy's float32 convolution sums each window with OpenBLAS's dot kernel, and OpenBLAS picks that kernel by CPU: an
AVX-512 machine sums in another order than an AVX2 one and gets other bits, so the embedded world's noise tile, and
some images drawn with it, differed between machines. Here each window's products (float32, as numpy multiplies them)
are summed in one written-out order, that of OpenBLAS's AVX2 ("Haswell") kernel, which made the committed data.
A window of 32 products or more: its first 32 are summed in float32 in that kernel's tree (each register's two
halves, the four registers, then the four lanes), the rest in float64 from left to right, and that sum plus the tree's
is rounded to float32. A shorter window (at a row's ends) is summed in float64 from left to right. numpy rounds each
float32 and float64 product and sum to nearest on every CPU, so the result is fixed; `tests/test_world.py` pins it
and compares it with np.convolve's.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LANES, REGISTERS = 8, 4  # the AVX2 kernel's block: 4 registers of 8 floats
BLOCK = LANES * REGISTERS
MIN_TAPS = 13  # the shortest kernel np.convolve sums through OpenBLAS's dot, as written out here


def ordered_sum(products: np.ndarray) -> np.ndarray:
    """The sums over the last axis of float32 `products`, in the fixed order above, as float32."""
    count = products.shape[-1]
    rest = np.zeros(products.shape[:-1])  # float64, from 0 as OpenBLAS's scalar loop
    for t in range(BLOCK if count >= BLOCK else 0, count):
        rest += products[..., t]
    if count < BLOCK:
        return rest.astype(np.float32)
    registers = products[..., :BLOCK].reshape(*products.shape[:-1], REGISTERS, LANES)
    halves = registers[..., :4] + registers[..., 4:]  # each register's high 4 lanes onto its low 4
    lanes = (halves[..., 0, :] + halves[..., 1, :]) + (halves[..., 2, :] + halves[..., 3, :])
    block = (lanes[..., 0] + lanes[..., 1]) + (lanes[..., 2] + lanes[..., 3])  # two horizontal adds
    return (rest + block).astype(np.float32)


def blur_rows(rows: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each row of float32 `rows` (R x L) convolved with the float32 `kernel` of odd length m, 13 <= m <= min(63, L),
    numpy's "same" mode: output j sums the window j - m // 2 .. j + m // 2, cut at the row's ends, against the
    flipped kernel. (np.convolve sums shorter kernels another way, and OpenBLAS fuses a second block's products into
    its registers; neither is written out here.)"""
    size, length = len(kernel), rows.shape[-1]
    if size % 2 == 0 or not MIN_TAPS <= size <= min(2 * BLOCK - 1, length):
        raise ValueError(f"need a kernel of odd length {MIN_TAPS} to {min(2 * BLOCK - 1, length)}, got {size} taps")
    half, flipped = size // 2, kernel[::-1]
    out = np.empty(rows.shape, np.float32)
    out[:, half : length - half] = ordered_sum(sliding_window_view(rows, size, axis=-1) * flipped)
    for j in range(half):  # the ends: windows cut to half + 1 + j taps
        taps = half + 1 + j
        out[:, j] = ordered_sum(rows[:, :taps] * flipped[size - taps :])
        out[:, length - 1 - j] = ordered_sum(rows[:, length - taps :] * flipped[:taps])
    return out
