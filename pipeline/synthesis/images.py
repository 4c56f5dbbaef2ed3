"""Image files and sizes: source images in, model-size resizing both ways, generated PNGs out."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.atomic import atomic_path
from pipeline.domains import PNG_FAST


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` at height x width: area averaging when shrinking (no aliasing), bicubic when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height <= image.shape[0] and width <= image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """The pipeline's float output (clamped to [0, 1]) as uint8, rounded as diffusers rounds its PIL output."""
    return (images * 255).round().astype(np.uint8)


def write_rgb_png(image: np.ndarray, path: Path) -> None:
    """Write an RGB image as a fast lossless PNG, atomically."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), PNG_FAST)
    if not ok:
        raise OSError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
